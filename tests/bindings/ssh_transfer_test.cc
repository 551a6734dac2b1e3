// ssh.upload and ssh.download against a real sshd: atomic replacement,
// modes, checksums, undo, rehearsal, and connections killed mid-transfer.
#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "engine/core/sha256.h"
#include "tests/bindings/ssh_test_util.h"

namespace runbook::testing {

TEST_CASE("ssh.upload writes the file with its mode and checksum", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  std::string dir = FreshDir(SharedSshd(), "up");
  Result<Value> r = c.Apply("ssh.upload", {{"conn", "box"}, {"dest", dir + "/app.conf"},
                                           {"content", "listen 8080\n"}, {"mode", "0640"}});
  REQUIRE(r.ok());
  CHECK(Slurp(dir + "/app.conf") == "listen 8080\n");
  CHECK(FileMode(dir + "/app.conf") == 0640);
  CHECK((*r)["sha256"] == Sha256Hex("listen 8080\n"));
  CHECK(c.ctx.changed == true);
  CHECK(FilesLike(dir, "runbook-").empty());
  CHECK(c.ctx.LastUndo()["existed"] == false);

  // The same content again changes nothing.
  r = c.Apply("ssh.upload", {{"conn", "box"}, {"dest", dir + "/app.conf"},
                             {"content", "listen 8080\n"}, {"mode", "0640"}});
  REQUIRE(r.ok());
  CHECK(c.ctx.changed == false);

  // Undo removes a file that did not exist before.
  c.ctx.undo_records.clear();
  r = c.Apply("ssh.upload", {{"conn", "box"}, {"dest", dir + "/new.conf"}, {"content", "x"}});
  REQUIRE(r.ok());
  CHECK(FileMode(dir + "/new.conf") == 0644);
  REQUIRE(c.Undo("ssh.upload", {{"conn", "box"}, {"dest", dir + "/new.conf"}}).ok());
  CHECK(FileMode(dir + "/new.conf") == -1);
  REQUIRE(c.Undo("ssh.upload", {{"conn", "box"}, {"dest", dir + "/new.conf"}}).ok());  // twice
}

TEST_CASE("ssh.upload keeps the previous file, and undo puts it back", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  std::string dir = FreshDir(SharedSshd(), "up");
  std::string dest = dir + "/pg_hba.conf";
  Spit(dest, "old rules\n", 0600);
  std::string src = dir + "/local-new.conf";
  Spit(src, "new rules\n");
  Value args{{"conn", "box"}, {"dest", dest}, {"src", src}};
  Result<Value> r = c.Apply("ssh.upload", args);
  REQUIRE(r.ok());
  CHECK(Slurp(dest) == "new rules\n");
  CHECK(FileMode(dest) == 0600);  // the previous file's mode
  Value undo = c.ctx.LastUndo();
  CHECK(undo["existed"] == true);
  CHECK(undo["mode"] == "0600");
  std::string backup = undo["backup"];
  CHECK(Slurp(backup) == "old rules\n");
  CHECK(backup == dir + "/.pg_hba.conf.runbook-backup-run-test-step-test");
  CHECK(FilesLike(dir, "runbook-tmp").empty());
  CHECK(c.Check("ssh.upload", args, undo) == CheckOutcome::kDone);

  // Before a rollback: the file is what the upload wrote, nothing to lose.
  CHECK(c.P("ssh.upload").CheckUndo(c.ctx, args, undo).ok());
  // Someone edits it since: putting the old file back would lose the edit.
  Spit(dest, "new rules\nhost all all 10.0.0.0/8 scram-sha-256\n", 0600);
  Status guard = c.P("ssh.upload").CheckUndo(c.ctx, args, undo);
  CHECK_FALSE(guard.ok());
  CHECK_THAT(guard.message(), Catch::Contains(dest + " changed since the upload"));
  CHECK(Slurp(backup) == "old rules\n");
  Spit(dest, "new rules\n", 0600);

  REQUIRE(c.Undo("ssh.upload", args).ok());
  CHECK(Slurp(dest) == "old rules\n");
  CHECK(FileMode(dest) == 0600);
  CHECK(FilesLike(dir, ".runbook-").empty());
  CHECK(c.P("ssh.upload").CheckUndo(c.ctx, args, undo).ok());  // nothing left to put back
  CHECK(c.Check("ssh.upload", args, undo) == CheckOutcome::kNotDone);
  REQUIRE(c.Undo("ssh.upload", args).ok());  // a second undo is harmless
  CHECK(Slurp(dest) == "old rules\n");
}

TEST_CASE("a retried upload keeps the backup of the first attempt", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  std::string dir = FreshDir(SharedSshd(), "up");
  std::string dest = dir + "/f";
  Spit(dest, "original");
  REQUIRE(c.Apply("ssh.upload", {{"conn", "box"}, {"dest", dest}, {"content", "v1"}}).ok());
  Value first = c.ctx.LastUndo();

  class Retry : public FakeStepContext {
   public:
    Value previous;
    Value PreviousUndo() override { return previous; }
  };
  (void)first;
  // A second attempt of the same invocation sees its first attempt's record.
  SshCase again;
  again.Connect("box", SharedSshd());
  Primitive& p = again.P("ssh.upload");
  Retry ctx;
  ctx.AddConnection("box", "ssh", SharedSshd().Config());
  ctx.previous = first;
  Value args{{"conn", "box"}, {"dest", dest}, {"content", "v2"}};
  REQUIRE(p.Apply(ctx, args).ok());
  CHECK(Slurp(dest) == "v2");
  CHECK(ctx.LastUndo()["backup"] == first["backup"]);
  CHECK(Slurp(first["backup"].get<std::string>()) == "original");
  REQUIRE(p.Undo(ctx, args, ctx.LastUndo()).ok());
  CHECK(Slurp(dest) == "original");
}

TEST_CASE("an upload rehearsal checks the target and writes nothing", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  std::string dir = FreshDir(SharedSshd(), "up");
  Result<Value> r = c.Rehearse("ssh.upload", {{"conn", "box"}, {"dest", dir + "/x.conf"},
                                              {"content", "hello"}});
  REQUIRE(r.ok());
  CHECK(c.ctx.changed == true);
  CHECK_THAT((*r)["rehearsal"].get<std::string>(), Catch::Contains("wrote nothing"));
  CHECK(FilesLike(dir, "").empty());
  CHECK(c.ctx.undo_records.empty());
  r = c.Rehearse("ssh.upload", {{"conn", "box"}, {"dest", dir + "/missing/x.conf"},
                                {"content", "hello"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("directory " + dir + "/missing does not exist"));
  CHECK(c.P("ssh.upload").rehearsal(Value::object()) == Rehearsal::kSimulate);
  CHECK_THAT(c.P("ssh.upload").Plan({{"conn", "box"}, {"dest", "/etc/app.conf"}, {"src", "a.conf"}}).text,
             Catch::Contains("/etc/.app.conf.runbook-tmp-*"));
}

TEST_CASE("a reader never sees a partial file while an upload replaces it", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  std::string dir = FreshDir(SharedSshd(), "up");
  std::string dest = dir + "/big";
  std::string old_content(3 << 20, 'o');
  std::string new_content(6 << 20, 'n');
  Spit(dest, old_content);
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, bad{0};
  std::thread reader([&] {
    while (!done) {
      std::string now = Slurp(dest);
      if (now != old_content && now != new_content) ++bad;
      ++reads;
    }
  });
  Result<Value> r = c.Apply("ssh.upload", {{"conn", "box"}, {"dest", dest}, {"content", new_content}});
  done = true;
  reader.join();
  REQUIRE(r.ok());
  CHECK(reads > 0);
  CHECK(bad == 0);
  CHECK(Slurp(dest) == new_content);
}

TEST_CASE("a connection killed mid-upload leaves the old file, and undo cleans up", "[ssh]") {
  SshdServer server;
  SshCase c;
  c.Connect("box", server);
  std::string dir = server.scratch();
  std::string dest = dir + "/data.bin";
  Spit(dest, "old");
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    for (int i = 0; i < 1000 && !killed; ++i) {
      for (const auto& name : FilesLike(dir, "runbook-tmp")) {
        if (std::filesystem::file_size(dir + "/" + name) > (1 << 20)) {
          server.KillSessions();
          killed = true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  Result<Value> r = c.Apply("ssh.upload", {{"conn", "box"}, {"dest", dest},
                                           {"content", std::string(96 << 20, 'x')}});
  killer.join();
  REQUIRE(killed);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'box'"));
  CHECK(Slurp(dest) == "old");
  // The journal knows the temp file; undo (on a new session) removes it.
  Value undo = c.ctx.LastUndo();
  REQUIRE(undo.contains("tmp"));
  REQUIRE(c.Undo("ssh.upload", {{"conn", "box"}, {"dest", dest}}).ok());
  CHECK(FilesLike(dir, "runbook-tmp").empty());
  CHECK(FilesLike(dir, "runbook-backup") == std::vector<std::string>{});
  CHECK(Slurp(dest) == "old");
}

TEST_CASE("ssh.download writes the local file atomically, and undo restores the old one", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  std::string remote = FreshDir(SharedSshd(), "down-remote");
  std::string local = FreshDir(SharedSshd(), "down-local");
  std::string content(2 << 20, 'd');
  Spit(remote + "/dump.sql", content, 0640);
  Spit(local + "/dump.sql", "previous", 0600);
  Value args{{"conn", "box"}, {"src", remote + "/dump.sql"}, {"dest", local + "/dump.sql"}};
  Result<Value> r = c.Apply("ssh.download", args);
  REQUIRE(r.ok());
  CHECK(Slurp(local + "/dump.sql") == content);
  CHECK(FileMode(local + "/dump.sql") == 0640);
  CHECK((*r)["sha256"] == Sha256Hex(content));
  CHECK(FilesLike(local, "runbook-tmp").empty());
  CHECK(c.Check("ssh.download", args, c.ctx.LastUndo()) == CheckOutcome::kDone);
  CHECK(c.P("ssh.download").CheckUndo(c.ctx, args, c.ctx.LastUndo()).ok());
  Spit(local + "/dump.sql", content + "-- a local note\n", 0640);
  Status guard = c.P("ssh.download").CheckUndo(c.ctx, args, c.ctx.LastUndo());
  CHECK_FALSE(guard.ok());
  CHECK_THAT(guard.message(), Catch::Contains("changed since the download"));
  Spit(local + "/dump.sql", content, 0640);
  REQUIRE(c.Undo("ssh.download", args).ok());
  CHECK(Slurp(local + "/dump.sql") == "previous");
  CHECK(FileMode(local + "/dump.sql") == 0600);
  CHECK(FilesLike(local, ".runbook-").empty());

  // A new local file is removed by undo.
  Value fresh{{"conn", "box"}, {"src", remote + "/dump.sql"}, {"dest", local + "/new.sql"},
              {"mode", "0600"}};
  REQUIRE(c.Apply("ssh.download", fresh).ok());
  CHECK(FileMode(local + "/new.sql") == 0600);
  REQUIRE(c.Undo("ssh.download", fresh).ok());
  CHECK(FileMode(local + "/new.sql") == -1);
}

TEST_CASE("ssh.download rehearses without writing and reports a missing file", "[ssh]") {
  SshCase c;
  c.Connect("box", SharedSshd());
  std::string remote = FreshDir(SharedSshd(), "down-remote");
  std::string local = FreshDir(SharedSshd(), "down-local");
  Spit(remote + "/f", "data");
  Result<Value> r = c.Rehearse("ssh.download", {{"conn", "box"}, {"src", remote + "/f"},
                                                {"dest", local + "/f"}});
  REQUIRE(r.ok());
  CHECK((*r)["size"] == 4);
  CHECK(FilesLike(local, "").empty());
  r = c.Apply("ssh.download", {{"conn", "box"}, {"src", remote + "/nope"}, {"dest", local + "/f"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kNotFound);
  CHECK_THAT(r.status().message(), Catch::Contains(remote + "/nope does not exist"));
  CHECK(FilesLike(local, "").empty());
}

}  // namespace runbook::testing
