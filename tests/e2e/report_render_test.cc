// The HTML report as a change record: rendered by a real browser (Debian's
// chromium, headless) and read back from the DOM it built, so markup the
// browser would repair or a value that became markup shows.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "engine/core/process.h"
#include "tests/e2e/e2e_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::e2e {
namespace {

using testing::BlueServer;
using testing::PgTestDb;

const char* kChange = R"(format: 1
name: change-record
params:
  db: {type: string}
  ticket: {type: string}
connections:
  db: {postgres: "${{ params.db }}"}
steps:
  - id: gate
    approve: "compare the tables?"
  - id: verify
    pg.compare_counts: {source: db, target: db, all: true}
  - id: note
    log: "${{ params.ticket }}"
)";

// The DOM chromium built from `file`, serialised.
std::string RenderedDom(const std::string& file) {
  ProcessSpec spec;
  spec.argv = {"chromium",      "--headless", "--no-sandbox",
               "--disable-gpu", "--dump-dom", "file://" + file};
  spec.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
  INFO("chromium is installed by scripts/deps.sh");
  REQUIRE(r.ok());
  INFO(r->err);
  REQUIRE(r->exit_code == 0);
  return r->out;
}

// The text of the table cell after the <th> holding `label`.
std::string SummaryCell(const std::string& dom, const std::string& label) {
  const size_t th = dom.find("<th>" + label + "</th>");
  if (th == std::string::npos) return "(no " + label + ")";
  const size_t td = dom.find("<td>", th);
  const size_t end = dom.find("</td>", td);
  return dom.substr(td + 4, end - td - 4);
}

size_t Count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("the HTML report, rendered by headless Chromium, is a complete change record",
          "[e2e][report][postgres]") {
  E2e t;
  PgTestDb db(BlueServer(), "report");
  db.Exec(
      "CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 7);"
      "CREATE TABLE \"<b>odd</b>\" (id int);");
  t.Write("change.yaml", kChange);
  const std::string hostile = "CHG-1 <img src=x onerror=alert(1)><script>alert(2)</script>";
  const std::vector<std::string> args{"run", "change.yaml",      "-p", "db=" + db.Conninfo(),
                                      "-p",  "ticket=" + hostile};
  auto env = BlueServer().ClientEnv();
  CliResult r = t.Run(args, env);
  INFO(r.All());
  REQUIRE(r.code == 3);  // waits at the gate
  const std::string id = t.LastRunId();
  REQUIRE(t.Run({"approve", id, "gate", "--by", "alice"}).code == 0);
  r = t.Run({"resume", id}, env);
  INFO(r.All());
  REQUIRE(r.code == 0);

  REQUIRE(t.Run({"report", id, "--format", "html", "-o", t.P("report.html")}).code == 0);
  const std::string dom = RenderedDom(t.P("report.html"));
  INFO(dom);
  // The run as a whole: what, which version, who, when, with what.
  CHECK(SummaryCell(dom, "Runbook") == t.P("change.yaml"));
  const Value json = Value::parse(t.Run({"report", id, "--format", "json"}).out);
  REQUIRE(json["digest"].get<std::string>().size() == 64);
  CHECK(SummaryCell(dom, "Digest") ==
        "<code>sha256:" + json["digest"].get<std::string>() + "</code>");
  CHECK(SummaryCell(dom, "Started by") == json["operator"]);
  CHECK_THAT(SummaryCell(dom, "Started by"), Catch::Contains("@"));
  CHECK(SummaryCell(dom, "Status") == "succeeded");
  CHECK(SummaryCell(dom, "Rehearsal") == "no");
  for (const char* when : {"Started", "Finished"}) {
    CHECK_THAT(SummaryCell(dom, when),
               Catch::Matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ"));
  }
  CHECK_THAT(SummaryCell(dom, "Params"), Catch::Contains("CHG-1 &lt;img src=x"));
  // One implementation log row per step, the verification table, the approval.
  CHECK(dom.find("<h2>Implementation Log</h2>") != std::string::npos);
  for (const char* step : {"<td>gate</td>", "<td>verify</td>", "<td>note</td>"}) {
    CHECK(Count(dom, step) >= 1);
  }
  CHECK(dom.find("<h2>Verification</h2>") != std::string::npos);
  CHECK(dom.find("<td>orders</td><td>7</td><td>7</td><td>match</td>") != std::string::npos);
  CHECK(dom.find("&lt;b&gt;odd&lt;/b&gt;") != std::string::npos);
  CHECK(dom.find("<h2>Approvals</h2>") != std::string::npos);
  CHECK(dom.find("<td>gate</td><td>alice</td>") != std::string::npos);
  // Nothing from the runbook or its params became markup in the browser.
  CHECK(Count(dom, "<img") == 0);
  CHECK(Count(dom, "<script") == 0);
  CHECK(Count(dom, "<b>") == 0);
}

}  // namespace runbook::e2e
