#!/usr/bin/env bash
# System services and packages the test suite needs, installed and started by the project itself:
# PostgreSQL (running), Debian's Chromium (for the radiographer page), Orthanc with DICOMweb (for the poller), and
# Debian's headless Java runtime (for the relink on Apache Spark), DCMTK (storescu: the C-STORE bench's sender).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v Orthanc >/dev/null 2>&1 || need+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
command -v pg_isready >/dev/null 2>&1 || need+=(postgresql postgresql-client)
command -v storescu >/dev/null 2>&1 || need+=(dcmtk)
# Debian's Java runtime for PySpark (priorscan link --engine spark): Spark 4 needs Java 17 or later
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1; }
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ] 2>/dev/null; then need+=(openjdk-17-jre-headless); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-system: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}" >/dev/null
fi
# Debian starts Orthanc as a service (user orthanc) on install; the tests run their own instances on free ports
# instead. Stop only the service's: its init script's stop also kills every process running /usr/sbin/Orthanc,
# which killed the Orthanc instances of test suites and benchmarks running at the same time.
if id orthanc >/dev/null 2>&1 && pgrep -u orthanc -x Orthanc >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO start-stop-daemon --stop --quiet --oknodo --retry=TERM/30/KILL/5 --user orthanc --exec /usr/sbin/Orthanc \
    >/dev/null 2>&1 || true
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup-system: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup-system: PostgreSQL is not reachable on 127.0.0.1:5432; the suite needs it" >&2
  exit 1
fi
echo "setup-system: PostgreSQL up, chromium $(command -v chromium), Orthanc $(command -v Orthanc), java $(java_major)"
