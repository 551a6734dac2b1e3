list(APPEND RUNBOOK_CORE_SOURCES
  engine/parser/lua_loader.cc
  engine/parser/node.cc
  engine/parser/param_values.cc
  engine/parser/params.cc
  engine/parser/runbook_loader.cc
  engine/parser/schema_json.cc
  engine/parser/validate_action.cc
  engine/parser/validate_connections.cc
  engine/parser/validate_include.cc
  engine/parser/validate_params.cc
  engine/parser/validate_step_keys.cc
  engine/parser/validate_steps.cc
  engine/parser/validate_templates.cc
  engine/parser/validate_window.cc
  engine/parser/validator.cc
  engine/parser/yaml_loader.cc
)
