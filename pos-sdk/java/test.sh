#!/usr/bin/env bash
# The SDK's own tests: JUnit 4 from Debian's junit4 package (apt-get install junit4).
#   pos-sdk/java/test.sh [OUT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
"$here/build.sh" "$out" >/dev/null
junit=/usr/share/java/junit4.jar
hamcrest=/usr/share/java/hamcrest-core.jar
for j in "$junit" "$hamcrest"; do
  [ -f "$j" ] || { echo "$j is missing: apt-get install junit4"; exit 1; }
done
rm -rf "$out/test"
mkdir -p "$out/test"
javac --release 8 -Xlint:all -Werror -encoding UTF-8 -cp "$out/classes:$junit" -d "$out/test" \
  $(find "$here/src/test/java" -name '*.java')
classes=$(cd "$here/src/test/java" && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g' | sort)
java -cp "$out/classes:$out/test:$junit:$hamcrest" org.junit.runner.JUnitCore $classes
