#!/usr/bin/env bash
# Builds pos-sdk/java with the JDK alone (Java 8 language level, no dependencies):
#   pos-sdk/java/build.sh [OUT]      OUT defaults to pos-sdk/java/build
# OUT/hisbridge-pos-sdk.jar   the library an Android POS app embeds
# OUT/demo                    the demo app (DemoPosApp, DemoAcquirer) for tests and joint testing
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
rm -rf "$out/classes" "$out/demo"
mkdir -p "$out/classes" "$out/demo"
javac --release 8 -Xlint:all -Werror -encoding UTF-8 -d "$out/classes" $(find "$here/src/main/java" -name '*.java')
jar cf "$out/hisbridge-pos-sdk.jar" -C "$out/classes" .
javac --release 8 -Xlint:all -Werror -encoding UTF-8 -cp "$out/classes" -d "$out/demo" $(find "$here/src/demo/java" -name '*.java')
echo "built $out/hisbridge-pos-sdk.jar"
