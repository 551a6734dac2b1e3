// What a primitive's result looks like, declared beside its arguments: the
// docs, the Lua stubs and a check of real results (the test suite runs every
// result it sees through CheckResultShape) read the same declaration.
//
//   MapResult({Field("database", FieldType::kString, "the database made"),
//              ListOfMaps("tables", "one per table copied",
//                         {Field("name", FieldType::kString, "schema.table"),
//                          Field("rows", FieldType::kInt, "rows copied")})})
#pragma once

#include <string>
#include <vector>

#include "engine/core/value.h"

namespace runbook {

enum class FieldType { kAny, kString, kInt, kNumber, kBool, kList, kMap };
const char* FieldTypeName(FieldType t);

// One field of a result, or the result itself (name ""). A kMap's keys, or
// the keys of each map in a kList of kMap, are `fields`; an `open` map may
// hold other keys too, whose names are data (a row's columns, table names).
struct FieldSpec {
  std::string name;
  FieldType type = FieldType::kAny;
  std::string help;
  bool optional = false;             // may be absent, or null
  FieldType item = FieldType::kAny;  // kList: what each element is
  std::vector<FieldSpec> fields;
  bool open = false;
};

FieldSpec Field(std::string name, FieldType type, std::string help);
// `f`, which may be absent or null.
FieldSpec Optional(FieldSpec f);
FieldSpec MapField(std::string name, std::string help, std::vector<FieldSpec> fields,
                   bool open = false);
FieldSpec ListField(std::string name, FieldType item, std::string help);
FieldSpec ListOfMaps(std::string name, std::string help, std::vector<FieldSpec> fields,
                     bool open = false);
// The result as a whole: a map, a list of maps, or anything.
FieldSpec MapResult(std::vector<FieldSpec> fields, bool open = false);
FieldSpec ListResult(std::string help, std::vector<FieldSpec> item_fields, bool open = false);
FieldSpec AnyResult(std::string help);

// Every way `result` differs from `spec`: "databases[2].name: expected
// string, got int", "tables[0].bytes: not documented", "target: missing".
// A rehearsal's UNKNOWN (value.h) stands for a value of any declared type.
std::vector<std::string> CheckResultShape(const FieldSpec& spec, const Value& result);

// True when RUNBOOK_CHECK_RESULTS is set (the test suite sets it): the
// executor then fails a step whose result differs from its declaration.
bool CheckResultsEnabled();

}  // namespace runbook
