// The one function that builds remote command lines (bindings/ssh/quote.h).
// Its round trip through a real sshd is in ssh_test.cc; these check the
// text itself, including by parsing it back with /bin/sh locally (the test
// may spawn a shell; the engine never does).
#include <catch2/catch.hpp>

#include "bindings/ssh/quote.h"
#include "engine/core/process.h"

namespace runbook {
namespace {

// What /bin/sh makes of `line`, as NUL-separated words (printf '%s\0').
std::vector<std::string> ShellWords(const std::string& line) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "printf '%s\\0' " + line};
  Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
  REQUIRE(r.ok());
  REQUIRE(r->exit_code == 0);
  std::vector<std::string> words;
  std::string cur;
  for (char c : r->out) {
    if (c == '\0') {
      words.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return words;
}

const std::vector<std::string> kNasty = {
    "plain",          "two words",   "it's",        "'",         "''",
    "\"double\"",     "$HOME",       "${PATH}",     "`id`",      "$(id)",
    "back\\slash",    "line\nbreak", "tab\there",   "",          "*",
    "?[a-z]",         "~",           "~root",       "a;b&&c||d", "x|y>z<w",
    "#comment",       "!",           "-n",          "--",        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80",
    "trailing\\",     "\r\n",        "{a,b}",       "%s\\0",     "\x01\x7f\xff",
};

}  // namespace

TEST_CASE("shell quoting single-quotes every argument", "[ssh][quote]") {
  CHECK(ShellQuote("plain") == "'plain'");
  CHECK(ShellQuote("") == "''");
  CHECK(ShellQuote("it's") == "'it'\\''s'");
  CHECK(ShellQuote("'") == "''\\'''");
  CHECK(ShellQuote("$HOME `id` \\") == "'$HOME `id` \\'");
  CHECK(ShellQuote("a\nb") == "'a\nb'");
}

TEST_CASE("a quoted argv parses back into exactly that argv", "[ssh][quote]") {
  std::string line;
  for (const auto& a : kNasty) line += ShellQuote(a) + " ";
  CHECK(ShellWords(line) == kNasty);
}

TEST_CASE("command lines put sudo and env before the quoted argv", "[ssh][quote]") {
  RemoteCommand cmd{{"systemctl", "restart", "my app"}, {}, false};
  CHECK(*BuildCommandLine(cmd) == "'systemctl' 'restart' 'my app'");
  cmd.sudo = true;
  CHECK(*BuildCommandLine(cmd) == "sudo -n -- 'systemctl' 'restart' 'my app'");
  cmd.env = {{"PGDATA", "/var/lib/pg data"}, {"A_1", "it's"}};
  CHECK(*BuildCommandLine(cmd) ==
        "sudo -n -- env 'A_1=it'\\''s' 'PGDATA=/var/lib/pg data' 'systemctl' 'restart' 'my app'");
  cmd.sudo = false;
  CHECK(*BuildCommandLine(cmd) ==
        "env 'A_1=it'\\''s' 'PGDATA=/var/lib/pg data' 'systemctl' 'restart' 'my app'");
}

TEST_CASE("env and sudo prefixes parse back as separate words", "[ssh][quote]") {
  RemoteCommand cmd{kNasty, {{"X", "$(id) 'q'"}}, true};
  Result<std::string> line = BuildCommandLine(cmd);
  REQUIRE(line.ok());
  std::vector<std::string> want = {"sudo", "-n", "--", "env", "X=$(id) 'q'"};
  want.insert(want.end(), kNasty.begin(), kNasty.end());
  CHECK(ShellWords(*line) == want);
}

TEST_CASE("command lines refuse bad env names, NUL bytes and an empty argv", "[ssh][quote]") {
  CHECK(ValidEnvName("PATH"));
  CHECK(ValidEnvName("_x9"));
  CHECK_FALSE(ValidEnvName(""));
  CHECK_FALSE(ValidEnvName("9x"));
  CHECK_FALSE(ValidEnvName("A-B"));
  CHECK_FALSE(ValidEnvName("A=B"));
  CHECK_FALSE(ValidEnvName("A B"));
  CHECK_FALSE(ValidEnvName("$(id)"));
  Result<std::string> bad = BuildCommandLine({{"true"}, {{"A;rm -rf /", "x"}}, false});
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("bad environment variable name 'A;rm -rf /'"));
  CHECK_FALSE(BuildCommandLine({{}, {}, false}).ok());
  CHECK_FALSE(BuildCommandLine({{std::string("a\0b", 3)}, {}, false}).ok());
  CHECK_FALSE(BuildCommandLine({{"true"}, {{"A", std::string("\0", 1)}}, false}).ok());
}

TEST_CASE("a shell command becomes sh -c with the command as one argument", "[ssh][quote]") {
  CHECK(ShellArgv("echo $HOME | wc -c") ==
        std::vector<std::string>{"sh", "-c", "echo $HOME | wc -c"});
  CHECK(*BuildCommandLine({ShellArgv("echo 'hi'"), {}, true}) ==
        "sudo -n -- 'sh' '-c' 'echo '\\''hi'\\'''");
}

}  // namespace runbook
