#!/usr/bin/env bash
# Regenerates domain/data/phone_timezones.txt (E.164 prefix -> IANA zones) from
# libphonenumber's published table (Apache-2.0; its licence is kept beside the data).
set -euo pipefail
cd "$(dirname "$0")/.."
ref="${1:-master}"
base="https://raw.githubusercontent.com/google/libphonenumber/$ref"
curl -fsSL "$base/resources/timezones/map_data.txt" -o domain/data/phone_timezones.txt
curl -fsSL "$base/LICENSE" -o domain/data/LICENSE-libphonenumber.txt
echo "updated from libphonenumber $ref; run cargo test -p domain window to check it"
