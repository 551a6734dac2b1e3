// Names and data sources shared by ssh.upload and ssh.download.
//
// Temporary and backup files sit next to the file they stand for, hidden
// (a leading dot) so that include globs such as conf.d/*.conf never pick
// them up:
//   <dir>/.<name>.runbook-tmp-<random>          being written; renamed over <name>
//   <dir>/.<name>.runbook-backup-<run>-<step>   the previous <name>, for undo
#pragma once

#include <memory>
#include <string>

#include "bindings/ssh/sftp_io.h"
#include "engine/core/registry.h"

namespace runbook {

// A new temp name; `tag` replaces the random part (for plan text: "*").
std::string TempPathFor(const std::string& path, const std::string& tag = "");
std::string BackupPathFor(const std::string& path, const std::string& run_id,
                          const std::string& step_id);

// The bytes to upload: a local file (`src`) or inline `content`.
class LocalData {
 public:
  static Result<LocalData> FromArgs(const Value& args);
  const std::string& sha256() const { return sha256_; }
  uint64_t size() const { return size_; }
  // "local file /x/y" or "42 bytes of content".
  std::string Describe() const;
  // Yields the bytes once, in order; fails if a local file changed since
  // FromArgs hashed it (checked at the end).
  Result<ByteSource> Open() const;

 private:
  std::string src_;      // local path, or ""
  std::string content_;  // when src_ is ""
  std::string sha256_;
  uint64_t size_ = 0;
};

}  // namespace runbook
