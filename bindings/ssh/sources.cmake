# The ssh binding (bindings/ssh) (its tests: tests/bindings/sources.cmake).
list(APPEND RUNBOOK_BINDING_SOURCES
  bindings/ssh/quote.cc
  bindings/ssh/register.cc
  bindings/ssh/sftp_ext.cc
  bindings/ssh/sftp_io.cc
  bindings/ssh/sha256_stream.cc
  bindings/ssh/ssh_auth.cc
  bindings/ssh/ssh_client.cc
  bindings/ssh/ssh_download.cc
  bindings/ssh/ssh_exec.cc
  bindings/ssh/ssh_hostkey.cc
  bindings/ssh/ssh_lease.cc
  bindings/ssh/ssh_primitive.cc
  bindings/ssh/ssh_primitives_exec.cc
  bindings/ssh/ssh_primitives_tunnel.cc
  bindings/ssh/ssh_proxy_jump.cc
  bindings/ssh/ssh_relay.cc
  bindings/ssh/ssh_target.cc
  bindings/ssh/ssh_upload.cc
  bindings/ssh/transfer_util.cc
  bindings/ssh/tunnel.cc
)
