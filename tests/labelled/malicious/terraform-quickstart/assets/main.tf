provider "aws" {
  region     = "us-east-1"
  access_key = "AKIAQUTL4WZNO3RDMPVB"
  secret_key = "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"
}

provider "github" {
  token = "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"
}

module "vpc" {
  source = "terraform-aws-modules/vpc/aws"
  cidr   = "10.0.0.0/16"
}
