// Authentication: a key file, then ssh-agent, then the default identities;
// never a password or keyboard-interactive, never a passphrase prompt (an
// encrypted key must be loaded into ssh-agent). Errors say what was tried,
// never a secret.
#include <libssh/callbacks.h>
#include <unistd.h>

#include <cstdlib>

#include "bindings/ssh/ssh_client.h"

namespace runbook {
namespace {

// Every passphrase request fails: libssh (and OpenSSL under it) would
// otherwise prompt on the terminal.
int NoPrompt(const char* /*prompt*/, char* /*buf*/, size_t /*len*/, int /*echo*/,
             int /*verify*/, void* userdata) {
  if (userdata) *static_cast<bool*>(userdata) = true;
  return -1;
}

ssh_callbacks_struct* NoPromptCallbacks() {
  static ssh_callbacks_struct cb = [] {
    ssh_callbacks_struct c{};
    c.size = sizeof(ssh_callbacks_struct);
    c.auth_function = NoPrompt;
    return c;
  }();
  return &cb;
}

std::string KeyFingerprint(ssh_key key) {
  unsigned char* hash = nullptr;
  size_t len = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != SSH_OK) return "";
  char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
  ssh_clean_pubkey_hash(&hash);
  std::string out = fp ? fp : "";
  if (fp) ssh_string_free_char(fp);
  return out;
}

std::string Methods(int m) {
  std::string out;
  auto add = [&](int bit, const char* name) {
    if (m & bit) out += (out.empty() ? "" : ", ") + std::string(name);
  };
  add(SSH_AUTH_METHOD_PUBLICKEY, "publickey");
  add(SSH_AUTH_METHOD_PASSWORD, "password");
  add(SSH_AUTH_METHOD_INTERACTIVE, "keyboard-interactive");
  add(SSH_AUTH_METHOD_GSSAPI_MIC, "gssapi");
  add(SSH_AUTH_METHOD_HOSTBASED, "hostbased");
  return out.empty() ? "none" : out;
}

// Tries the key file; appends what happened to `tried`.
Result<bool> TryIdentity(ssh_session s, const std::string& path, const std::string& what,
                         std::string* tried) {
  if (access(path.c_str(), R_OK) != 0) {
    return Status::Failed(what + ": identity file " + path + " cannot be read");
  }
  bool wanted_passphrase = false;
  ssh_key key = nullptr;
  int rc = ssh_pki_import_privkey_file(path.c_str(), nullptr, NoPrompt, &wanted_passphrase, &key);
  if (rc != SSH_OK) {
    if (wanted_passphrase) {
      return Status::Failed(what + ": identity file " + path +
                            " is encrypted and runbook never asks for a passphrase: add the key "
                            "to ssh-agent (ssh-add) and leave SSH_AUTH_SOCK set");
    }
    return Status::Failed(what + ": identity file " + path + " is not a private key libssh can read");
  }
  std::string fp = KeyFingerprint(key);
  rc = ssh_userauth_publickey(s, nullptr, key);
  ssh_key_free(key);
  if (rc == SSH_AUTH_ERROR) return Status::Unavailable(what + ": " + ssh_get_error(s));
  *tried += std::string(tried->empty() ? "" : ", ") + "identity " + path + " (" + fp + ")";
  return rc == SSH_AUTH_SUCCESS;
}

}  // namespace

Status Authenticate(ssh_session s, const SshTarget& t, const std::string& what) {
  ssh_set_callbacks(s, NoPromptCallbacks());
  int rc = ssh_userauth_none(s, nullptr);
  if (rc == SSH_AUTH_SUCCESS) return Status::Ok();
  if (rc == SSH_AUTH_ERROR) return Status::Unavailable(what + ": " + ssh_get_error(s));
  int methods = ssh_userauth_list(s, nullptr);
  if (!(methods & SSH_AUTH_METHOD_PUBLICKEY)) {
    return Status::Failed(what + ": the server does not accept public keys (it offers: " +
                          Methods(methods) + "); runbook uses keys and ssh-agent only");
  }
  std::string tried;
  if (!t.identity.empty()) {
    Result<bool> ok = TryIdentity(s, t.identity, what, &tried);
    if (!ok.ok()) return ok.status();
    if (*ok) return Status::Ok();
  }
  const char* agent = getenv("SSH_AUTH_SOCK");
  if (agent && *agent) {
    rc = ssh_userauth_agent(s, nullptr);
    if (rc == SSH_AUTH_SUCCESS) return Status::Ok();
    tried += std::string(tried.empty() ? "" : ", ") + "the keys of ssh-agent";
  }
  if (t.identity.empty()) {
    // IdentityFile from ssh config, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
    rc = ssh_userauth_publickey_auto(s, nullptr, nullptr);
    if (rc == SSH_AUTH_SUCCESS) return Status::Ok();
    tried += std::string(tried.empty() ? "" : ", ") +
             "the default identities (ssh config IdentityFile, ~/.ssh/id_*)";
  }
  if (rc == SSH_AUTH_ERROR && !ssh_is_connected(s)) {
    return Status::Unavailable(what + ": connection lost during authentication: " +
                               ssh_get_error(s));
  }
  return Status::Failed(what + ": authentication failed: the server refused " +
                        (tried.empty() ? std::string("every key") : tried) +
                        ". Check that the public key is in the remote user's authorized_keys");
}

}  // namespace runbook
