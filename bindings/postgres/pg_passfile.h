// The password file (~/.pgpass) for a server reached through a tunnel or a
// port-forward. libpq looks an entry up by the host and port it connects
// to, which there is 127.0.0.1 and a random local port, so the entry the
// operator wrote for the real server never matches; the engine looks it up
// by the real server instead, exactly as libpq would have.
#pragma once

#include <optional>
#include <string>

#include "engine/core/value.h"

namespace runbook {

struct PassfileKey {
  std::string host;  // as the tunnel's far end reaches it
  int port = 5432;
  std::string dbname;  // "": the user name
  std::string user;    // "": PGUSER, else the local user
};

// The password of the first line of `path` matching `key`, as libpq reads
// it: fields host:port:database:user:password, `*` matching anything, `\:`
// and `\\` escaped, lines starting with # ignored; and nothing from a file
// that is not a regular file or that group or others may read (libpq
// ignores it, with a warning). nullopt: no entry.
std::optional<std::string> PasswordFromPassfile(const std::string& path, const PassfileKey& key);

// For a postgres connection `config` about to be routed to a local port:
// when it has no password of its own (no `password`, none in the dsn, no
// PGPASSWORD) and names no service (a service file is libpq's to read, the
// password it may hold included), the password file's (the dsn's passfile, else PGPASSFILE,
// else ~/.pgpass) entry for the real server `host`:`port`, with the
// config's (else libpq's default) database and user. nullopt: none.
std::optional<std::string> TunnelledPassword(const Value& config, const std::string& host,
                                             int port);

}  // namespace runbook
