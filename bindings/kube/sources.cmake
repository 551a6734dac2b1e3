# The kube binding (bindings/kube) (its tests: tests/bindings/sources.cmake).
list(APPEND RUNBOOK_BINDING_SOURCES
  bindings/kube/kube_lease.cc
  bindings/kube/kube_manifest.cc
  bindings/kube/kube_objects.cc
  bindings/kube/kube_secrets.cc
  bindings/kube/kube_primitive.cc
  bindings/kube/kube_primitives_apply.cc
  bindings/kube/kube_primitives_exec.cc
  bindings/kube/kube_primitives_job.cc
  bindings/kube/kube_primitives_patch.cc
  bindings/kube/kube_primitives_read.cc
  bindings/kube/kube_primitives_scale.cc
  bindings/kube/kube_target.cc
  bindings/kube/kubectl_client.cc
  bindings/kube/kubectl_errors.cc
  bindings/kube/port_forward.cc
  bindings/kube/register.cc
)
