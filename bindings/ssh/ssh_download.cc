// ssh.download: a remote file to a local path over SFTP, atomically:
// <dir>/.<name>.runbook-tmp-<random> (O_EXCL, 0600) is written while the
// bytes are hashed, fsynced, re-read and checked against that hash, given
// its mode, then renamed over the destination and the directory fsynced.
// The remote file must not change meanwhile (size and mtime are compared).
// The previous local file is kept as a hard link for undo, which puts it
// back (or removes a file that did not exist, if it is still ours).
// Rehearsal (simulate): checks that the remote file can be opened for
// reading and the local directory is writable; writes nothing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bindings/ssh/sha256_stream.h"
#include "bindings/ssh/ssh_lease.h"
#include "bindings/ssh/ssh_primitive.h"
#include "bindings/ssh/transfer_util.h"
#include "engine/core/sha256.h"

namespace runbook {
namespace {

Status Errno(const std::string& what) { return Status::Failed(what + ": " + strerror(errno)); }

Status WriteAll(int fd, const char* data, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Errno("write " + path);
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open " + dir);
  int rc = fsync(fd);
  close(fd);
  return rc == 0 ? Status::Ok() : Errno("fsync " + dir);
}

// The local file as `dest`'s previous content, for undo: a hard link, or a
// copy where links fail (some file systems).
Status KeepLocal(const std::string& dest, const std::string& backup) {
  struct stat st;
  if (lstat(backup.c_str(), &st) == 0) return Status::Ok();  // an earlier attempt's: keep
  if (link(dest.c_str(), backup.c_str()) == 0) return Status::Ok();
  Result<std::string> sha = Sha256File(dest);  // proves it is readable before copying
  if (!sha.ok()) return sha.status();
  int in = open(dest.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0 || fstat(in, &st) != 0) return Errno("open " + dest);
  int out = open(backup.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
  if (out < 0) {
    close(in);
    return Errno("create " + backup);
  }
  char buf[65536];
  Status s;
  for (ssize_t n; s.ok() && (n = read(in, buf, sizeof buf)) != 0;) {
    s = n < 0 ? Errno("read " + dest) : WriteAll(out, buf, static_cast<size_t>(n), backup);
  }
  if (s.ok() && fsync(out) != 0) s = Errno("fsync " + backup);
  close(in);
  close(out);
  return s;
}

class SshDownload : public NamedPrimitive {
 public:
  SshDownload()
      : NamedPrimitive(
            "ssh.download",
            Schema{"Copies a file from the host (src) to a local path (dest) over SFTP: "
                   "atomically (temp file, fsync, rename), sha256 checked; the previous local "
                   "file is kept for rollback.",
                   {SshConnArg(), Arg("src", ArgType::kString, true, "remote path of the file"),
                    Arg("dest", ArgType::kString, true, "local path to write"),
                    Arg("mode", ArgType::kAny, false,
                        "local file mode such as \"0600\" (default: the remote file's)")},
                   {},
                   ""},
            MapResult(
                {Field("src", FieldType::kString, "remote path of the file"),
                 Field("dest", FieldType::kString, "local path written"),
                 Optional(Field("size", FieldType::kInt,
                                "size of the remote file in bytes (absent on resume)")),
                 Optional(Field("mode", FieldType::kString,
                                "file mode given to dest, such as \"0600\" (absent on resume)")),
                 Optional(Field("sha256", FieldType::kString,
                                "sha256 of the downloaded bytes (hex; absent in a rehearsal)")),
                 Optional(Field("backup", FieldType::kString,
                                "where the previous local file is kept for rollback (absent "
                                "when there was none, on resume and in a rehearsal)")),
                 Optional(Field("rehearsal", FieldType::kString,
                                "what a rehearsal checked (absent in a real run)"))})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    std::string dest = StrArg(args, "dest");
    return {"sftp " + StrArg(args, "conn") + ": download " + StrArg(args, "src") + " to " + dest +
                " (write " + TempPathFor(dest, "*") + ", fsync, verify sha256, rename)",
            UndoKind::kUndoes,
            "restore the previous local " + dest + ", or remove it if it did not exist"};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override;
  Status CheckUndo(StepContext& ctx, const Value& args, const Value& undo) override;
  Status Undo(StepContext& ctx, const Value& args, const Value& undo) override;
  CheckResult Check(StepContext& ctx, const Value& args, const Value& undo) override;

 private:
  Result<std::string> Fetch(SftpSession& s, const std::string& src, const std::string& tmp,
                            int mode, SteadyTime deadline);
};

Result<std::string> SshDownload::Fetch(SftpSession& s, const std::string& src,
                                       const std::string& tmp, int mode, SteadyTime deadline) {
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create " + tmp);
  Sha256Stream hash;
  Status r = s.Read(src, deadline, [&](const char* data, size_t n) {
    hash.Update(data, n);
    return WriteAll(fd, data, n, tmp);
  });
  if (r.ok() && fchmod(fd, static_cast<mode_t>(mode)) != 0) r = Errno("chmod " + tmp);
  if (r.ok() && fsync(fd) != 0) r = Errno("fsync " + tmp);
  if (close(fd) != 0 && r.ok()) r = Errno("close " + tmp);
  if (!r.ok()) return r;
  std::string sha = hash.Hex();
  Result<std::string> written = Sha256File(tmp);
  if (!written.ok()) return written.status();
  if (*written != sha) {
    return Status::Failed("local " + tmp + " reads back with sha256 " + *written + ", expected " +
                          sha + " (local disk trouble?)");
  }
  return sha;
}

Result<Value> SshDownload::Apply(StepContext& ctx, const Value& args) {
  const std::string src = StrArg(args, "src");
  const std::string dest = StrArg(args, "dest");
  Result<std::optional<int>> mode_arg = SshModeArg(args, "mode");
  if (!mode_arg.ok()) return mode_arg.status();
  struct stat lst;
  bool exists = lstat(dest.c_str(), &lst) == 0;
  if (exists && !S_ISREG(lst.st_mode)) {
    return Status::Invalid("local " + dest + " exists and is not a regular file");
  }
  const std::string dir = PathDir(dest);
  if (access(dir.c_str(), W_OK) != 0) return Errno("local directory " + dir);
  Result<SshLease> lease = LeaseSsh(ctx, StrArg(args, "conn"), ctx.deadline());
  if (!lease.ok()) return lease.status();
  Result<SftpSession*> sftp = lease->Sftp();
  if (!sftp.ok()) return sftp.status();
  SftpSession& s = **sftp;
  Result<RemoteStat> rst = s.Stat(src, true);
  if (!rst.ok()) return rst.status();
  const std::string where = s.client().Describe() + ": " + src;
  if (!rst->exists) return Status::NotFound(where + " does not exist");
  if (!rst->regular()) return Status::Invalid(where + " is not a regular file");
  const int mode = mode_arg->value_or(rst->mode & 0777);
  Value result{{"src", src}, {"dest", dest}, {"size", rst->size}, {"mode", FormatMode(mode)}};
  if (ctx.dry_run()) {
    Status r = s.CheckReadable(src);
    if (!r.ok()) return r;
    result["rehearsal"] = "the remote file is readable and the local directory writable; "
                          "nothing was written";
    return result;
  }
  Value prev = ctx.PreviousUndo();
  bool retry = prev.is_object() && prev.contains("tmp");
  bool existed = retry ? prev.value("existed", false) : exists;
  const std::string backup = BackupPathFor(dest, ctx.run_id(), ctx.step_id());
  const std::string tmp = TempPathFor(dest);
  Value undo{{"dest", dest}, {"existed", existed}, {"tmp", tmp}};
  if (existed) undo["backup"] = backup;
  Status r = ctx.RecordUndo(undo);
  if (!r.ok()) return r;
  if (existed && exists) {
    r = KeepLocal(dest, backup);
    if (!r.ok()) return r.Prefixed("keeping the previous " + dest + " for rollback");
  }
  Result<std::string> sha = Fetch(s, src, tmp, mode, ctx.deadline());
  Result<RemoteStat> after = sha.ok() ? s.Stat(src, true) : Result<RemoteStat>(sha.status());
  if (after.ok() && (after->size != rst->size || after->mtime != rst->mtime)) {
    after = Status::Failed(where + " changed while it was being downloaded; try again");
  }
  if (!after.ok()) {
    unlink(tmp.c_str());
    return after.status();
  }
  undo["sha256"] = *sha;
  r = ctx.RecordUndo(undo);
  if (r.ok() && rename(tmp.c_str(), dest.c_str()) != 0) r = Errno("rename " + tmp + " to " + dest);
  if (r.ok()) r = FsyncDir(dir);
  if (!r.ok()) {
    unlink(tmp.c_str());
    return r;
  }
  result["sha256"] = *sha;
  ctx.SetChanged(true);
  if (existed) result["backup"] = backup;
  return result;
}

// The undo puts the previous local file back over dest: refused when dest
// changed since the download (a local edit), unless it is what the backup
// holds (the download never replaced it).
Status SshDownload::CheckUndo(StepContext&, const Value& args, const Value& undo) {
  if (!undo.is_object() || !undo.value("existed", false) || !undo.contains("sha256")) {
    return Status::Ok();
  }
  const std::string dest = undo.value("dest", StrArg(args, "dest"));
  const std::string backup = undo.value("backup", "");
  struct stat st;
  if (lstat(backup.c_str(), &st) != 0 || lstat(dest.c_str(), &st) != 0) return Status::Ok();
  Result<std::string> now = Sha256File(dest);
  if (!now.ok()) return now.status();
  if (*now == undo["sha256"].get<std::string>()) return Status::Ok();
  Result<std::string> kept = Sha256File(backup);
  if (!kept.ok()) return kept.status();
  if (*now == *kept) return Status::Ok();
  return Status::Failed("local " + dest + " changed since the download (sha256 " +
                        now->substr(0, 12) + "): putting the previous file back would lose "
                        "that change");
}

Status SshDownload::Undo(StepContext& ctx, const Value& args, const Value& undo) {
  if (!undo.is_object()) return Status::Ok();
  const std::string dest = undo.value("dest", StrArg(args, "dest"));
  if (undo.contains("tmp") && unlink(undo["tmp"].get<std::string>().c_str()) != 0 &&
      errno != ENOENT) {
    return Errno("remove " + undo["tmp"].get<std::string>());
  }
  struct stat st;
  if (undo.value("existed", false)) {
    const std::string backup = undo.value("backup", "");
    if (lstat(backup.c_str(), &st) != 0) return Status::Ok();  // never replaced, or put back
    if (rename(backup.c_str(), dest.c_str()) != 0) return Errno("restore " + dest);
    ctx.Log(LogLevel::kInfo, "restored the previous local " + dest);
    return FsyncDir(PathDir(dest));
  }
  if (lstat(dest.c_str(), &st) != 0) return Status::Ok();
  Result<std::string> sha = Sha256File(dest);
  if (!sha.ok()) return sha.status();
  if (*sha != undo.value("sha256", "")) {
    ctx.Log(LogLevel::kWarn, "local " + dest + " changed since the download: left in place");
    return Status::Ok();
  }
  if (unlink(dest.c_str()) != 0) return Errno("remove " + dest);
  return Status::Ok();
}

CheckResult SshDownload::Check(StepContext& ctx, const Value& args, const Value&) {
  const std::string src = StrArg(args, "src");
  const std::string dest = StrArg(args, "dest");
  Result<std::string> local = Sha256File(dest);
  if (!local.ok()) return {CheckOutcome::kNotDone, nullptr};
  Result<SshLease> lease = LeaseSsh(ctx, StrArg(args, "conn"), ctx.deadline());
  if (!lease.ok()) return {};
  Result<SftpSession*> sftp = lease->Sftp();
  if (!sftp.ok()) return {};
  Result<std::string> remote = (*sftp)->Sha256(src, ctx.deadline());
  if (!remote.ok()) return {};
  if (*remote != *local) return {CheckOutcome::kNotDone, nullptr};
  return {CheckOutcome::kDone, Value{{"src", src}, {"dest", dest}, {"sha256", *local}}};
}

}  // namespace

void AddSshDownloadPrimitives(Registry* r) { r->Add(std::make_unique<SshDownload>()); }

}  // namespace runbook
