// ssh.upload: a local file (or inline content) to a remote path over SFTP,
// atomically and verified:
//   1. record the undo state (journal first), then keep the previous file
//      as a hard link <dir>/.<name>.runbook-backup-<run>-<step> (same inode:
//      content, mode, owner; a copy where links are not possible);
//   2. write <dir>/.<name>.runbook-tmp-<random> (O_EXCL, 0600), fsync;
//   3. chmod to the wanted mode (or the previous file's), chown to the
//      previous owner when allowed;
//   4. read it back: its sha256 must equal the local data's;
//   5. posix-rename@openssh.com over the destination (rename(2): readers
//      see the old file or the new one, never a partial one).
// Undo renames the backup back (or removes a file that did not exist, if it
// is still ours) and removes a leftover temp file. Rehearsal (simulate):
// connects, checks the directory, free space and (by mode bits) write
// permission, and whether the file would change; writes nothing.
#include <cstring>

#include "bindings/ssh/ssh_lease.h"
#include "bindings/ssh/ssh_primitive.h"
#include "bindings/ssh/transfer_util.h"

namespace runbook {
namespace {

constexpr int kDefaultMode = 0644;

Value UploadResult(const std::string& dest, const LocalData& data, int mode) {
  return Value{
      {"dest", dest}, {"sha256", data.sha256()}, {"size", data.size()}, {"mode", FormatMode(mode)}};
}

// What was there before this invocation changed anything. A retry (or a
// resume) keeps what the first attempt recorded: by now the destination may
// hold this step's own upload.
struct Prior {
  bool existed = false;
  std::string backup;
};

Prior PriorState(StepContext& ctx, const std::string& dest, const RemoteStat& st) {
  Value prev = ctx.PreviousUndo();
  Prior p;
  if (prev.is_object() && prev.contains("tmp")) {
    p.existed = prev.value("existed", false);
    p.backup = prev.value("backup", "");
  } else {
    p.existed = st.exists;
  }
  if (p.existed && p.backup.empty()) p.backup = BackupPathFor(dest, ctx.run_id(), ctx.step_id());
  return p;
}

// The backup where hard links are not possible: a copy with the same mode
// (and owner, when allowed). Held in memory: a fallback for odd servers.
Status CopyRemote(SftpSession& s, const std::string& from, const std::string& to,
                  const RemoteStat& st, SteadyTime deadline) {
  std::string bytes;
  Status r = s.Read(from, deadline, [&](const char* d, size_t n) {
    bytes.append(d, n);
    return Status::Ok();
  });
  if (!r.ok()) return r;
  size_t pos = 0;
  bool synced = false;
  r = s.WriteNew(to, st.mode, deadline, [&](char* buf, size_t n) -> Result<size_t> {
    size_t k = std::min(n, bytes.size() - pos);
    memcpy(buf, bytes.data() + pos, k);
    pos += k;
    return k;
  }, &synced);
  if (!r.ok()) return r;
  s.Chmod(to, st.mode);
  s.Chown(to, st.uid, st.gid);  // best effort
  return Status::Ok();
}

// Write permission of `dir` for the ssh user, judged by mode bits: SFTP
// cannot ask the server. The user is taken to own its login directory.
Status CheckWritable(SftpSession& sftp, const std::string& dir, const RemoteStat& st) {
  Result<std::string> home = sftp.Home();
  if (!home.ok()) return home.status();
  Result<RemoteStat> hst = sftp.Stat(*home, true);
  if (!hst.ok()) return hst.status();
  uint32_t uid = hst->uid;
  bool writable = uid == 0 || (st.uid == uid && (st.mode & 0200)) || (st.mode & 0002) ||
                  (st.mode & 0020);  // group: cannot tell membership; assume yes
  if (writable) return Status::Ok();
  return Status::Failed(sftp.client().Describe() + ": directory " + dir +
                        " is not writable by the ssh user (uid " + std::to_string(uid) +
                        "; the directory is owned by uid " + std::to_string(st.uid) + ", mode " +
                        FormatMode(st.mode) + ")");
}

class SshUpload : public NamedPrimitive {
 public:
  SshUpload()
      : NamedPrimitive(
            "ssh.upload",
            Schema{"Copies a local file (src) or text (content) to dest on the host over SFTP: "
                   "atomically (temp file, rename), sha256 verified; the previous file is kept "
                   "for rollback.",
                   {SshConnArg(), Arg("dest", ArgType::kString, true, "remote path of the file"),
                    Arg("src", ArgType::kString, false, "local file to upload"),
                    Arg("content", ArgType::kString, false, "text to upload"),
                    Arg("mode", ArgType::kAny, false,
                        "file mode such as \"0640\" (default: the previous file's, else 0644)")},
                   {{"src", "content"}},
                   ""},
            MapResult({Field("dest", FieldType::kString, "remote path of the file"),
                       Field("sha256", FieldType::kString, "sha256 of the uploaded bytes (hex)"),
                       Field("size", FieldType::kInt, "bytes uploaded"),
                       Field("mode", FieldType::kString, "file mode of dest, such as \"0644\""),
                       Optional(Field("backup", FieldType::kString,
                                      "where the previous file is kept for rollback (absent when "
                                      "dest was new or already as asked, on resume and in a "
                                      "rehearsal)")),
                       Optional(Field("rehearsal", FieldType::kString,
                                      "what a rehearsal checked (absent in a real run)"))})) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    std::string dest = StrArg(args, "dest");
    std::string what = args.contains("src")
                           ? "local file " + StrArg(args, "src")
                           : std::to_string(StrArg(args, "content").size()) + " bytes of content";
    std::string mode = args.contains("mode") ? " mode " + StrArg(args, "mode") : "";
    return {"sftp " + StrArg(args, "conn") + ": upload " + what + " to " + dest + mode +
                " (write " + TempPathFor(dest, "*") + ", verify sha256, rename over " + dest + ")",
            UndoKind::kUndoes,
            "restore the previous " + dest +
                " (kept as a hard link), or remove it if it "
                "did not exist"};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override;
  Status CheckUndo(StepContext& ctx, const Value& args, const Value& undo) override;
  Status Undo(StepContext& ctx, const Value& args, const Value& undo) override;
  CheckResult Check(StepContext& ctx, const Value& args, const Value& undo) override;

 private:
  Result<Value> Rehearse(StepContext& ctx, SftpSession& sftp, const std::string& dest,
                         const LocalData& data, const RemoteStat& st, const RemoteStat& dir,
                         int mode);
  Status Replace(StepContext& ctx, SftpSession& sftp, const std::string& dest,
                 const LocalData& data, const RemoteStat& st, int mode, const Prior& prior,
                 const std::string& tmp);
};

Result<Value> SshUpload::Apply(StepContext& ctx, const Value& args) {
  const std::string dest = StrArg(args, "dest");
  if (dest.empty() || dest.back() == '/') return Status::Invalid("dest must name a file: " + dest);
  Result<LocalData> data = LocalData::FromArgs(args);
  if (!data.ok()) return data.status();
  Result<std::optional<int>> mode_arg = SshModeArg(args, "mode");
  if (!mode_arg.ok()) return mode_arg.status();
  Result<SshLease> lease = LeaseSsh(ctx, StrArg(args, "conn"), ctx.deadline());
  if (!lease.ok()) return lease.status();
  Result<SftpSession*> sftp = lease->Sftp();
  if (!sftp.ok()) return sftp.status();
  SftpSession& s = **sftp;
  const std::string where = s.client().Describe() + ": " + dest;
  Result<RemoteStat> st = s.Stat(dest, false);
  if (!st.ok()) return st.status();
  if (st->symlink()) return Status::Invalid(where + " is a symbolic link: name the file it points to");
  if (st->exists && !st->regular()) return Status::Invalid(where + " exists and is not a regular file");
  const std::string dir = PathDir(dest);
  Result<RemoteStat> dst = s.Stat(dir, true);
  if (!dst.ok()) return dst.status();
  if (!dst->directory()) return Status::NotFound(where + ": directory " + dir + " does not exist");
  const int mode = mode_arg->value_or(st->exists ? st->mode : kDefaultMode);
  if (ctx.dry_run()) return Rehearse(ctx, s, dest, *data, *st, *dst, mode);

  if (st->exists && st->size == data->size() && st->mode == mode) {
    Result<std::string> sha = s.Sha256(dest, ctx.deadline());
    if (!sha.ok()) return sha.status();
    if (*sha == data->sha256()) {
      Value prev = ctx.PreviousUndo();
      if (!prev.is_object() || !prev.contains("tmp")) {
        Status r = ctx.RecordUndo(Value{{"dest", dest}, {"existed", true}, {"unchanged", true}});
        if (!r.ok()) return r;
      }
      ctx.SetChanged(false);
      return UploadResult(dest, *data, mode);
    }
  }
  const Prior prior = PriorState(ctx, dest, *st);
  const std::string tmp = TempPathFor(dest);
  Status r = Replace(ctx, s, dest, *data, *st, mode, prior, tmp);
  if (!r.ok()) {
    if (s.client().connected()) s.Remove(tmp);  // best effort; undo retries it
    return r;
  }
  ctx.SetChanged(true);
  Value out = UploadResult(dest, *data, mode);
  if (prior.existed) out["backup"] = prior.backup;
  return out;
}

Status SshUpload::Replace(StepContext& ctx, SftpSession& s, const std::string& dest,
                          const LocalData& data, const RemoteStat& st, int mode,
                          const Prior& prior, const std::string& tmp) {
  const SteadyTime deadline = ctx.deadline();
  const std::string where = s.client().Describe() + ": " + dest;
  Value undo{{"dest", dest}, {"existed", prior.existed}, {"tmp", tmp}, {"sha256", data.sha256()}};
  if (prior.existed) undo["backup"] = prior.backup;
  if (st.exists) undo["mode"] = FormatMode(st.mode);
  Status r = ctx.RecordUndo(undo);
  if (!r.ok()) return r;
  if (prior.existed && st.exists) {
    // An earlier attempt's backup holds the original: keep it.
    Result<RemoteStat> bst = s.Stat(prior.backup, false);
    if (!bst.ok()) return bst.status();
    if (!bst->exists) {
      r = s.Hardlink(dest, prior.backup, deadline);
      if (!r.ok() && s.client().connected()) r = CopyRemote(s, dest, prior.backup, st, deadline);
      if (!r.ok()) return r.Prefixed("keeping the previous file for rollback");
    }
  }
  Result<ByteSource> source = data.Open();
  if (!source.ok()) return source.status();
  bool synced = false;
  r = s.WriteNew(tmp, 0600, deadline, *source, &synced);
  if (!r.ok()) return r;
  r = s.Chmod(tmp, mode);
  if (!r.ok()) return r;
  if (st.exists) {
    Result<RemoteStat> tst = s.Stat(tmp, false);
    if (tst.ok() && (tst->uid != st.uid || tst->gid != st.gid) &&
        !s.Chown(tmp, st.uid, st.gid).ok()) {
      ctx.Log(LogLevel::kWarn, where + ": the new file belongs to uid " + std::to_string(tst->uid) +
                                   " (the previous one to uid " + std::to_string(st.uid) +
                                   "): only root can give it away");
    }
  }
  Result<std::string> sha = s.Sha256(tmp, deadline);
  if (!sha.ok()) return sha.status();
  if (*sha != data.sha256()) {
    return Status::Failed(where + ": sha256 of the uploaded file is " + *sha + ", expected " +
                          data.sha256() + "; the destination was not touched");
  }
  if (!synced) ctx.Log(LogLevel::kInfo, where + ": the server cannot fsync (no fsync@openssh.com)");
  if (s.HasExtension("posix-rename@openssh.com")) return s.PosixRename(tmp, dest, deadline);
  if (st.exists) {
    return Status::Failed(where + ": the SFTP server cannot replace a file atomically (no "
                          "posix-rename@openssh.com); the destination was not touched");
  }
  return s.Rename(tmp, dest);  // plain SFTP rename: fine when nothing is there
}

Result<Value> SshUpload::Rehearse(StepContext& ctx, SftpSession& s, const std::string& dest,
                                  const LocalData& data, const RemoteStat& st,
                                  const RemoteStat& dir, int mode) {
  const SteadyTime deadline = ctx.deadline();
  const std::string where = s.client().Describe() + ": " + dest;
  Status w = CheckWritable(s, PathDir(dest), dir);
  if (!w.ok()) return w;
  Result<SftpSession::Space> space = s.Statvfs(PathDir(dest));
  if (space.ok()) {
    if (space->read_only) return Status::Failed(where + ": the file system is mounted read-only");
    if (space->available < data.size()) {
      return Status::Failed(where + ": " + std::to_string(data.size()) + " bytes needed, " +
                            std::to_string(space->available) + " available");
    }
  }
  bool change = true;
  if (st.exists && st.size == data.size() && st.mode == mode) {
    Result<std::string> sha = s.Sha256(dest, deadline);
    if (!sha.ok()) return sha.status();
    change = *sha != data.sha256();
  }
  ctx.SetChanged(change);  // what a real run would do
  Value out = UploadResult(dest, data, mode);
  out["rehearsal"] = "checked the directory, free space and permissions; wrote nothing";
  return out;
}

// The undo puts the previous file back over dest. If someone changed dest
// since the upload (an operator's edit of the new config), that would lose
// their change: refused, unless dest is what the upload wrote or what the
// backup holds (the upload never replaced it).
Status SshUpload::CheckUndo(StepContext& ctx, const Value& args, const Value& undo) {
  if (!undo.is_object() || undo.value("unchanged", false) || !undo.value("existed", false) ||
      !undo.contains("sha256")) {
    return Status::Ok();
  }
  const std::string dest = undo.value("dest", StrArg(args, "dest"));
  const std::string backup = undo.value("backup", "");
  Result<SshLease> lease = LeaseSsh(ctx, StrArg(args, "conn"), ctx.deadline());
  if (!lease.ok()) return lease.status();
  Result<SftpSession*> sftp = lease->Sftp();
  if (!sftp.ok()) return sftp.status();
  SftpSession& s = **sftp;
  Result<RemoteStat> bst = s.Stat(backup, false);
  if (!bst.ok()) return bst.status();
  Result<RemoteStat> dst = s.Stat(dest, false);
  if (!dst.ok()) return dst.status();
  if (!bst->exists || !dst->exists) return Status::Ok();  // nothing is replaced
  Result<std::string> now = s.Sha256(dest, ctx.deadline());
  if (!now.ok()) return now.status();
  if (*now == undo["sha256"].get<std::string>()) return Status::Ok();
  Result<std::string> kept = s.Sha256(backup, ctx.deadline());
  if (!kept.ok()) return kept.status();
  if (*now == *kept) return Status::Ok();
  return Status::Failed(s.client().Describe() + ": " + dest +
                        " changed since the upload (sha256 " + now->substr(0, 12) +
                        ", uploaded " + undo["sha256"].get<std::string>().substr(0, 12) +
                        "): putting the previous file back would lose that change");
}

Status SshUpload::Undo(StepContext& ctx, const Value& args, const Value& undo) {
  if (!undo.is_object() || undo.value("unchanged", false)) return Status::Ok();
  const std::string dest = undo.value("dest", StrArg(args, "dest"));
  Result<SshLease> lease = LeaseSsh(ctx, StrArg(args, "conn"), ctx.deadline());
  if (!lease.ok()) return lease.status();
  Result<SftpSession*> sftp = lease->Sftp();
  if (!sftp.ok()) return sftp.status();
  SftpSession& s = **sftp;
  const std::string where = s.client().Describe() + ": " + dest;
  if (undo.contains("tmp")) {
    Status r = s.Remove(undo["tmp"].get<std::string>());
    if (!r.ok()) return r;
  }
  if (undo.value("existed", false)) {
    const std::string backup = undo.value("backup", "");
    Result<RemoteStat> bst = s.Stat(backup, false);
    if (!bst.ok()) return bst.status();
    if (!bst->exists) {
      // Never made (the step failed first) or already put back (undo ran before).
      ctx.Log(LogLevel::kInfo, where + ": no backup " + backup + " to restore; the previous file "
                                       "was not replaced or is back already");
      return Status::Ok();
    }
    Status r = s.PosixRename(backup, dest, ctx.deadline());
    if (!r.ok()) return r;
    // rename(2) does nothing when both names are links to one file: the
    // upload failed before replacing the destination, which still is the
    // backup's inode. The destination is the original; drop the extra link.
    Result<RemoteStat> left = s.Stat(backup, false);
    if (!left.ok()) return left.status();
    if (left->exists) {
      r = s.Remove(backup);
      if (!r.ok()) return r;
    }
    ctx.Log(LogLevel::kInfo, where + ": restored the previous file");
    return Status::Ok();
  }
  Result<RemoteStat> st = s.Stat(dest, false);
  if (!st.ok()) return st.status();
  if (!st->exists) return Status::Ok();
  Result<std::string> sha = s.Sha256(dest, ctx.deadline());
  if (!sha.ok()) return sha.status();
  if (*sha != undo.value("sha256", "")) {
    ctx.Log(LogLevel::kWarn, where + " changed since the upload (sha256 " + *sha +
                                 "): left in place");
    return Status::Ok();
  }
  Status r = s.Remove(dest);
  if (r.ok()) ctx.Log(LogLevel::kInfo, where + ": removed (it did not exist before)");
  return r;
}

CheckResult SshUpload::Check(StepContext& ctx, const Value& args, const Value&) {
  const std::string dest = StrArg(args, "dest");
  Result<LocalData> data = LocalData::FromArgs(args);
  Result<std::optional<int>> mode = SshModeArg(args, "mode");
  if (!data.ok() || !mode.ok()) return {};
  Result<SshLease> lease = LeaseSsh(ctx, StrArg(args, "conn"), ctx.deadline());
  if (!lease.ok()) return {};
  Result<SftpSession*> sftp = lease->Sftp();
  if (!sftp.ok()) return {};
  Result<RemoteStat> st = (*sftp)->Stat(dest, false);
  if (!st.ok()) return {};
  if (!st->regular() || st->size != data->size()) return {CheckOutcome::kNotDone, nullptr};
  if (mode->has_value() && st->mode != **mode) return {CheckOutcome::kNotDone, nullptr};
  Result<std::string> sha = (*sftp)->Sha256(dest, ctx.deadline());
  if (!sha.ok()) return {};
  if (*sha != data->sha256()) return {CheckOutcome::kNotDone, nullptr};
  return {CheckOutcome::kDone, UploadResult(dest, *data, st->mode)};
}

}  // namespace

void AddSshUploadPrimitives(Registry* r) { r->Add(std::make_unique<SshUpload>()); }

}  // namespace runbook
