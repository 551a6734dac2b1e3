// SHA-256 over data that arrives in pieces (a file streamed over SFTP).
#pragma once

#include <cstddef>
#include <string>

namespace runbook {

class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;

  void Update(const void* data, size_t n);
  // Lowercase hex; the stream must not be updated afterwards.
  std::string Hex();

 private:
  void* ctx_;  // EVP_MD_CTX
};

}  // namespace runbook
