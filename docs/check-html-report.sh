#!/usr/bin/env bash
# Looks at the HTML report in headless Chromium (docs/reports.md, "How to look at the HTML
# report"): renders synthetic reports, takes a screenshot, checks that the page's script ran
# without a console error and filled the table, and drives the table (sort, filters, paging,
# search) on 100,000 users, printing what it saw and how long each step took.
#
#   docs/check-html-report.sh            # then look at /tmp/report.png
#
# Needs Chromium and poppler-utils (Debian: apt-get install -y --no-install-recommends chromium
# poppler-utils). DOCS=1 also updates the images in docs/img. Exits non-zero
# when the script logged an error or the table is not filled as expected.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp}
chromium_headless() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" "$@"
}

# 1. target/report-sample.html (2,006 users after a run, hostile display names included),
#    target/report-print.html (a 400-user wave before its run) and target/report-100k.html.
cargo test --locked --quiet --lib report::html::tests::write_sample_reports -- --ignored
ls -l target/report-sample.html target/report-print.html target/report-100k.html

# 2. Screenshots of the top of the sample report at 1400 and 800 px, and the report printed
#    (A4, as a change board gets it): its first page and its last (the sign-off block) as
#    images. DOCS=1 copies them into docs/img.
chromium_headless --window-size=1400,1800 --screenshot="$OUT/report.png" \
  "file://$PWD/target/report-sample.html" 2>/dev/null
chromium_headless --window-size=800,1400 --screenshot="$OUT/report-800.png" \
  "file://$PWD/target/report-sample.html" 2>/dev/null
chromium_headless --no-pdf-header-footer --print-to-pdf="$OUT/report.pdf" \
  "file://$PWD/target/report-print.html" 2>/dev/null
pages=$(pdfinfo "$OUT/report.pdf" | awk '/^Pages:/ {print $2}')
pdftoppm -png -r 70 -f 1 -l 1 -singlefile "$OUT/report.pdf" "$OUT/report-print-first"
pdftoppm -png -r 70 -f "$pages" -l "$pages" -singlefile "$OUT/report.pdf" "$OUT/report-print-last"
echo "screenshots: $OUT/report.png $OUT/report-800.png; printed: $OUT/report.pdf ($pages pages)," \
  "$OUT/report-print-first.png $OUT/report-print-last.png"
if [ -n "${DOCS:-}" ]; then
  cp "$OUT/report.png" docs/img/report.png
  cp "$OUT/report-800.png" docs/img/report-800.png
  cp "$OUT/report-print-first.png" docs/img/report-print-first.png
  cp "$OUT/report-print-last.png" docs/img/report-print-last.png
fi

# 3. The 100k report with a probe appended (after </html> the parser puts it in the body; the
#    page's policy allows inline scripts). The probe clicks and types, then writes a log into
#    the DOM, which --dump-dom prints once the virtual time budget has run the timers.
cat target/report-100k.html - > "$OUT/report-probe.html" <<'PROBE'
<script>
window.addEventListener("load", function () {
  var log = ["loaded after " + Math.round(performance.now()) + " ms"];
  var $ = function (id) { return document.getElementById(id); };
  function rows() { return document.querySelectorAll("#rows tr").length; }
  function first() { var td = document.querySelector("#rows tr td"); return td ? td.textContent : "-"; }
  function change(id, value) { var el = $(id); el.value = value; el.dispatchEvent(new Event("change")); }
  function step(label, action) {
    var start = performance.now();
    action();
    log.push(label + " (" + Math.round(performance.now() - start) + " ms): " + rows() + " rows; " +
      $("count").textContent + " first: " + first());
  }
  log.push("initial: " + rows() + " rows; " + $("count").textContent);
  step("sort by UPN", function () { document.querySelector("th[data-key=upn] button").click(); });
  step("sort by UPN, descending", function () { document.querySelector("th[data-key=upn] button").click(); });
  step("decision = blocked", function () { change("f-decision", "1"); });
  step("reason = exchange-mailbox", function () { change("f-reason", "exchange-mailbox"); });
  step("last page", function () { $("p-last").click(); });
  log.push($("p-where").textContent + "; next disabled: " + $("p-next").disabled);
  step("clear filters", function () { change("f-decision", ""); change("f-reason", ""); });
  step("realm = not checked", function () { change("f-realm", "none"); });
  change("f-realm", "");
  $("f-text").value = "partner099999";
  $("f-text").dispatchEvent(new Event("input"));
  setTimeout(function () {
    log.push("search partner099999: " + rows() + " rows; " + $("count").textContent);
    var pre = document.createElement("pre");
    pre.id = "probe-log";
    pre.textContent = log.join("\n");
    document.body.appendChild(pre);
  }, 500);
});
</script>
PROBE
chromium_headless --enable-logging=stderr --v=0 --virtual-time-budget=10000 \
  --dump-dom "file://$OUT/report-probe.html" > "$OUT/report-dom.html" 2> "$OUT/report-console.log"
sed -n '/<pre id="probe-log">/,/<\/pre>/p' "$OUT/report-dom.html" | sed 's/<[^>]*>//g'

status=0
if grep -i 'CONSOLE' "$OUT/report-console.log"; then
  echo "FAIL: the page logged to the console (above)" >&2
  status=1
fi
if ! grep -q '^initial: 100 rows; Showing 1–100 of 100,000 matching users' "$OUT/report-dom.html"; then
  echo "FAIL: the first page does not show 100 of 100,000 users" >&2
  status=1
fi
if ! grep -q '^search partner099999: 1 rows' "$OUT/report-dom.html"; then
  echo "FAIL: the search did not find the one user" >&2
  status=1
fi
[ "$status" = 0 ] && echo "OK: no console output, table filled, filters, sort, paging and search work"
exit "$status"
