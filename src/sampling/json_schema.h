// JSON Schema -> GBNF, after llama.cpp's json-schema-to-grammar: the output of the grammar is
// a JSON document the schema accepts. Also the grammar of "any JSON object" (OpenAI
// response_format json_object, Ollama format "json", `edgellm run --json-mode`).
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "sampling/grammar.h"

namespace edgellm::sampling {

// A schema the converter refuses: the message names the JSON pointer of the part and why
// ("JSON schema at /properties/age: 'minimum' is not supported").
class json_schema_error : public usage_error {
public:
    using usage_error::usage_error;
};

// Supported: type (object, array, string, number, integer, boolean, null, or a list of
// them), properties + required (optional properties may be left out; others are not allowed
// unless additionalProperties says so, as in llama.cpp), additionalProperties, enum, const,
// items, prefixItems, minItems/maxItems, $ref to #/$defs/... or #/definitions/... (recursion
// allowed), anyOf/oneOf, minLength/maxLength, format date/time/date-time/uuid (other formats
// are annotations: plain strings). Keywords that would constrain the value in ways the grammar
// does not follow (pattern, minimum, allOf, ...) are refused rather than ignored.
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema);
std::shared_ptr<const grammar> json_schema_to_grammar(const nlohmann::ordered_json& schema);

// Several documents in one grammar, to be wrapped by a larger one (tool calls): the rules, and
// for each schema the name of the rule matching one document of it (no trailing whitespace;
// named after `prefix` + its index). There is no root rule: the caller writes it.
struct json_schema_rules {
    std::string gbnf;
    std::vector<std::string> names;
};
json_schema_rules json_schemas_to_gbnf_rules(const std::vector<nlohmann::ordered_json>& schemas,
                                             const std::string& prefix);

// Any JSON object, with bounded whitespace between tokens.
const std::string& json_object_gbnf();
std::shared_ptr<const grammar> json_object_grammar();

}  // namespace edgellm::sampling
