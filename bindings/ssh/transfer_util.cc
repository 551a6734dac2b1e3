#include "bindings/ssh/transfer_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "bindings/ssh/sha256_stream.h"
#include "bindings/ssh/ssh_primitive.h"
#include "engine/core/sha256.h"

namespace runbook {
namespace {

std::string Safe(const std::string& s) {
  std::string out;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    out += ok ? c : '_';
  }
  return out;
}

std::string Hidden(const std::string& path, const std::string& suffix) {
  std::string dir = PathDir(path);
  std::string base = PathBase(path);
  std::string name = "." + base + suffix;
  if (name.size() > 250) name = "." + base.substr(0, 250 - suffix.size() - 1) + suffix;
  return (dir == "/" ? "" : dir) + "/" + name;
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

std::string TempPathFor(const std::string& path, const std::string& tag) {
  if (!tag.empty()) return Hidden(path, ".runbook-tmp-" + tag);
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return Hidden(path, ".runbook-tmp-" + std::string(buf, 10));
}

std::string BackupPathFor(const std::string& path, const std::string& run_id,
                          const std::string& step_id) {
  return Hidden(path, ".runbook-backup-" + Safe(run_id) + "-" + Safe(step_id));
}

Result<LocalData> LocalData::FromArgs(const Value& args) {
  LocalData d;
  if (args.contains("src") && !args["src"].is_null()) {
    d.src_ = StrArg(args, "src");
    struct stat st;
    if (stat(d.src_.c_str(), &st) != 0) {
      return Status::NotFound("local file " + d.src_ + ": " + strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) return Status::Invalid("local " + d.src_ + " is not a regular file");
    Result<std::string> sha = Sha256File(d.src_);
    if (!sha.ok()) return sha.status();
    d.sha256_ = *sha;
    d.size_ = static_cast<uint64_t>(st.st_size);
    return d;
  }
  if (!args.contains("content")) return Status::Invalid("give src (a local file) or content");
  d.content_ = StrArg(args, "content");
  d.sha256_ = Sha256Hex(d.content_);
  d.size_ = d.content_.size();
  return d;
}

std::string LocalData::Describe() const {
  return src_.empty() ? std::to_string(size_) + " bytes of content" : "local file " + src_;
}

Result<ByteSource> LocalData::Open() const {
  if (src_.empty()) {
    auto pos = std::make_shared<size_t>(0);
    const std::string* content = &content_;
    return ByteSource([pos, content](char* buf, size_t n) -> Result<size_t> {
      size_t k = std::min(n, content->size() - *pos);
      memcpy(buf, content->data() + *pos, k);
      *pos += k;
      return k;
    });
  }
  int fd = open(src_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Failed("cannot open local file " + src_ + ": " + strerror(errno));
  auto closer = std::make_shared<FdCloser>(fd);
  auto hash = std::make_shared<Sha256Stream>();
  std::string src = src_, want = sha256_;
  return ByteSource([closer, hash, src, want](char* buf, size_t n) -> Result<size_t> {
    ssize_t r;
    do {
      r = read(closer->fd(), buf, n);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return Status::Failed("cannot read local file " + src + ": " + strerror(errno));
    if (r > 0) {
      hash->Update(buf, static_cast<size_t>(r));
    } else if (hash->Hex() != want) {
      return Status::Failed("local file " + src + " changed while it was being uploaded");
    }
    return static_cast<size_t>(r);
  });
}

}  // namespace runbook
