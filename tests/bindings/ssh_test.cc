// ssh connections and ssh.exec against a real sshd (tests/fixtures/sshd_fixture.h).
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>

#include "bindings/ssh/quote.h"
#include "tests/bindings/ssh_test_util.h"

namespace runbook::testing {
namespace {

std::vector<std::string> SplitNul(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == '\0') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

// Waits up to `ms` for pid to be gone.
bool GoneWithin(pid_t pid, int ms) {
  for (int i = 0; i < ms / 20; ++i) {
    if (!ProcessAlive(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !ProcessAlive(pid);
}

}  // namespace

TEST_CASE("ssh.exec returns stdout, stderr and the exit code", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  Result<Value> r = c.Apply("ssh.exec", {{"conn", "box"}, {"command", "echo out; echo err >&2"}});
  REQUIRE(r.ok());
  CHECK((*r)["exit_code"] == 0);
  CHECK((*r)["stdout"] == "out\n");
  CHECK((*r)["stderr"] == "err\n");

  r = c.Apply("ssh.exec", {{"conn", "box"}, {"argv", {"sh", "-c", "echo half; exit 3"}},
                           {"ok_codes", {0, 3}}});
  REQUIRE(r.ok());
  CHECK((*r)["exit_code"] == 3);
  CHECK((*r)["command"] == "'sh' '-c' 'echo half; exit 3'");

  r = c.Apply("ssh.exec", {{"conn", "box"}, {"command", "echo broken >&2; exit 7"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'box' (root@127.0.0.1:" +
                                                   std::to_string(SharedSshd().port()) + ")"));
  CHECK_THAT(r.status().message(), Catch::Contains("exited with 7: broken"));
}

TEST_CASE("every argument survives the trip through the remote shell byte for byte", "[ssh][quote]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  std::vector<std::string> args = {
      "plain", "two words", "it's", "'", "\"dq\"", "$HOME", "${PATH}", "`id`", "$(id)", "a\\b",
      "line\nbreak", "tab\there", "", "*", "?", "~", "a;b&&c||d", "x|y>z<w", "#", "!", "-n", "--",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80", "trailing\\", "\r\n", "{a,b}", "%s\\0",
      "\x01\x7f\xff", std::string(5000, 'x') + "'" + std::string(5000, '"')};
  Value argv = Value::array({"printf", "%s\\0"});
  for (const auto& a : args) argv.push_back(a);
  Result<Value> r = c.Apply("ssh.exec", {{"conn", "box"}, {"argv", argv}});
  REQUIRE(r.ok());
  CHECK(SplitNul((*r)["stdout"].get<std::string>()) == args);

  // The same through env and a shell command.
  r = c.Apply("ssh.exec", {{"conn", "box"}, {"command", "printf '%s\\0' \"$V\" \"$W\""},
                           {"env", {{"V", args[9]}, {"W", "$(id) 'q' \n `x`"}}}});
  REQUIRE(r.ok());
  CHECK(SplitNul((*r)["stdout"].get<std::string>()) ==
        std::vector<std::string>{args[9], "$(id) 'q' \n `x`"});
}

TEST_CASE("ssh.exec reads more than a MiB from stdout and stderr at once", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  Result<Value> r = c.Apply(
      "ssh.exec", {{"conn", "box"},
                   {"command", "head -c 3000000 /dev/zero | tr '\\0' o & "
                               "head -c 2000000 /dev/zero | tr '\\0' e >&2; wait"}});
  REQUIRE(r.ok());
  CHECK((*r)["stdout"].get<std::string>() == std::string(3000000, 'o'));
  CHECK((*r)["stderr"].get<std::string>() == std::string(2000000, 'e'));
}

TEST_CASE("ssh.exec feeds stdin and keeps output within max_output", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  std::string big;
  for (int i = 0; big.size() < 4000000; ++i) big += "line " + std::to_string(i) + "\n";
  // cat echoes while we still send: stdin and stdout windows both in play.
  Result<Value> r = c.Apply("ssh.exec", {{"conn", "box"}, {"argv", {"cat"}}, {"stdin", big}});
  REQUIRE(r.ok());
  CHECK((*r)["stdout"].get<std::string>() == big);

  r = c.Apply("ssh.exec", {{"conn", "box"}, {"argv", {"cat"}}, {"stdin", big}, {"max_output", 10}});
  REQUIRE(r.ok());
  CHECK((*r)["stdout"] == big.substr(0, 10));
  CHECK((*r)["stdout_truncated"] == true);

  r = c.Apply("ssh.exec", {{"conn", "box"}, {"argv", {"cat"}}});  // no stdin: EOF at once
  REQUIRE(r.ok());
  CHECK((*r)["stdout"] == "");
}

TEST_CASE("ssh.exec passes env and refuses bad variable names", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  Result<Value> r = c.Apply("ssh.exec", {{"conn", "box"}, {"argv", {"printenv", "GREETING"}},
                                         {"env", {{"GREETING", "hello 'world'"}}}});
  REQUIRE(r.ok());
  CHECK((*r)["stdout"] == "hello 'world'\n");
  r = c.Apply("ssh.exec", {{"conn", "box"}, {"argv", {"true"}}, {"env", {{"A;B", "x"}}}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("bad environment variable name 'A;B'"));
}

TEST_CASE("sudo commands are quoted behind sudo -n and fail clearly without sudo", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  Value args{{"conn", "box"}, {"argv", {"systemctl", "restart", "my db"}}, {"sudo", true},
             {"env", {{"LANG", "C"}}}};
  CHECK_THAT(c.P("ssh.exec").Plan(args).text,
             Catch::Contains("sudo -n -- env 'LANG=C' 'systemctl' 'restart' 'my db'"));
  bool have_sudo = access("/usr/bin/sudo", X_OK) == 0;
  Result<Value> r = c.Apply("ssh.exec", {{"conn", "box"}, {"argv", {"id", "-u"}}, {"sudo", true}});
  if (have_sudo) {
    REQUIRE(r.ok());
    CHECK((*r)["stdout"] == "0\n");
  } else {
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("exited with 127"));
    CHECK_THAT(r.status().message(), Catch::Contains("sudo is not installed on the host"));
  }
}

TEST_CASE("a timeout ends the remote command and the processes it started", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  std::string dir = FreshDir(SharedSshd(), "timeout");
  auto start = std::chrono::steady_clock::now();
  Result<Value> r = c.Apply(
      "ssh.exec", {{"conn", "box"},
                   {"command", "echo $$ > " + dir + "/pid; sleep 300 & echo $! > " + dir +
                                   "/child; echo started; wait"},
                   {"timeout", "1s"}});
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  CHECK_THAT(r.status().message(), Catch::Contains("did not finish within its time of 1"));
  CHECK_THAT(r.status().message(), Catch::Contains("was sent TERM"));
  CHECK(took < std::chrono::seconds(8));
  pid_t shell = atoi(Slurp(dir + "/pid").c_str());
  pid_t child = atoi(Slurp(dir + "/child").c_str());
  REQUIRE(shell > 0);
  REQUIRE(child > 0);
  CHECK(GoneWithin(shell, 3000));
  CHECK(GoneWithin(child, 3000));

  // The step's own deadline ends it the same way.
  c.ctx.deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(800);
  r = c.Apply("ssh.exec", {{"conn", "box"}, {"argv", {"sleep", "300"}}});
  c.ctx.deadline_ = SteadyTime::max();
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  // The session is still usable afterwards.
  r = c.Apply("ssh.exec", {{"conn", "box"}, {"argv", {"echo", "still here"}}});
  REQUIRE(r.ok());
  CHECK((*r)["stdout"] == "still here\n");
}

TEST_CASE("ssh.exec rehearses only probes and plans the exact command line", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  Primitive& p = c.P("ssh.exec");
  Value probe{{"conn", "box"}, {"argv", {"uname", "-s"}}, {"probe", true}};
  Value change{{"conn", "box"}, {"argv", {"rm", "-rf", "/srv/old data"}}};
  CHECK(p.rehearsal(probe) == Rehearsal::kProbe);
  CHECK(p.rehearsal(change) == Rehearsal::kSkip);
  CHECK(p.idempotent(probe));
  CHECK_FALSE(p.idempotent(change));
  PlanEffect e = p.Plan(change);
  CHECK(e.text == "ssh box: 'rm' '-rf' '/srv/old data'");
  CHECK_FALSE(e.reversible());
  Result<Value> r = c.Rehearse("ssh.exec", probe);
  REQUIRE(r.ok());
  CHECK((*r)["stdout"] == "Linux\n");
  CHECK(CheckArgs(p.schema(), Value{{"conn", "box"}}).size() == 1);  // argv or command
}

TEST_CASE("one session per connection is reused across steps", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  Result<Value> a = c.Apply("ssh.exec", {{"conn", "box"}, {"command", "echo $SSH_CONNECTION"}});
  Result<Value> b = c.Apply("ssh.exec", {{"conn", "box"}, {"command", "echo $SSH_CONNECTION"}});
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK((*a)["stdout"] == (*b)["stdout"]);  // same client port: same TCP connection
}

}  // namespace runbook::testing
