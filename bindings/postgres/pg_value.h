// Conversions between libpq's text format and Value.
#pragma once

#include <libpq-fe.h>

#include <optional>
#include <string>
#include <vector>

#include "engine/core/value.h"

namespace runbook {

// One field of a text-format result as a Value: int2/int4/int8/oid as
// integers; float4/float8 as numbers (NaN and infinities stay text); numeric
// as an integer when it is one and fits in 64 bits, as a number when it has at
// most 15 significant digits (so the double is exact to the digits shown),
// else as text; bool as bool; json/jsonb parsed; NULL as null; the rest text.
Value PgFieldToValue(Oid type, const char* text, bool is_null);

// All rows of `res` as [{column: value}]. A column name that repeats
// (`select 1, 1`) gets a suffix: "?column?", "?column?_2".
Value PgRowsToValue(const PGresult* res, std::vector<std::string>* columns);

// A step argument as a query parameter: strings as they are, numbers and
// bools in PostgreSQL's text form, null as SQL NULL, lists and maps as JSON.
std::optional<std::string> ValueToPgParam(const Value& v);

// A text[] literal ('{"a","b\"c"}') for passing a list as one $n parameter.
std::string PgTextArray(const std::vector<std::string>& items);

}  // namespace runbook
