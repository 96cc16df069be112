#!/usr/bin/env bash
# Spark 4 needs Java 17+. Install it when run as root on Debian/Ubuntu, else say how in one line.
set -u
version_ok() {
  command -v java >/dev/null 2>&1 || return 1
  v=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  major=${v%%.*}
  [ -n "$major" ] && [ "$major" -ge 17 ] 2>/dev/null
}
version_ok && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Java 17+ not found: installing openjdk-17-jre-headless with apt-get" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless) >&2 \
    && version_ok && exit 0
fi
echo "Java 17+ is required by Spark and was not found: install it (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless)" >&2
exit 1
