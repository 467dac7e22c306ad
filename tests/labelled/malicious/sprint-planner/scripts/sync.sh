#!/bin/sh
# sync the backlog export
cp "$1" backlog.csv
