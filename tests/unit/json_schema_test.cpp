// JSON Schema -> GBNF on a table of schemas: each converted grammar parses, accepts the valid
// example documents and rejects the invalid ones; unsupported or broken schemas are refused
// with the JSON pointer of the problem.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sampling/grammar_matcher.h"
#include "sampling/json_schema.h"

using namespace edgellm::sampling;
using json = nlohmann::ordered_json;

namespace {

struct schema_case {
    const char* name;
    const char* schema;
    std::vector<std::string> valid, invalid;
};

bool full_match(const std::shared_ptr<const grammar>& g, const std::string& text) {
    grammar_matcher m(g);
    return m.accept(text) && m.can_end();
}

const std::vector<schema_case>& cases() {
    static const std::vector<schema_case> k = {
        {"string", R"({"type": "string"})", {R"("hi")", R"("a\"b\\c\u00e9")", R"("")", "\"é\""}, {"hi", R"("a)", "1"}},
        {"integer", R"({"type": "integer"})", {"0", "-12", "123456"}, {"1.5", "01", "\"1\"", "-"}},
        {"number", R"({"type": "number"})", {"0", "-1.25", "3e10", "2.5E-3"}, {"1.", ".5", "NaN"}},
        {"boolean_null", R"({"type": ["boolean", "null"]})", {"true", "false", "null"}, {"1", "\"true\""}},
        {"enum", R"({"enum": ["red", "green", 3, null]})", {R"("red")", R"("green")", "3", "null"}, {R"("blue")", "4"}},
        {"const", R"({"const": {"a": [1, "x"]}})", {R"({"a":[1,"x"]})"}, {R"({"a": [1, "x"]})", "{}"}},
        {"object_required",
         R"({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
             "required": ["name", "age"]})",
         {R"({"name": "Ann", "age": 31})", R"({ "name":"B","age":0 })"},
         {R"({"age": 31, "name": "Ann"})", R"({"name": "Ann"})", R"({"name": "Ann", "age": 31, "x": 1})", "{}"}},
        {"object_optional",
         R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
             "required": ["a"]})",
         {R"({"a": 1})", R"({"a": 1, "b": "x"})", R"({"a": 1, "c": true})", R"({"a": 1, "b": "x", "c": false})"},
         {R"({"b": "x"})", R"({"a": 1, "c": true, "b": "x"})", R"({"a": 1,})"}},
        {"object_all_optional", R"({"properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}})",
         {"{}", R"({"x": 1})", R"({"y": 2})", R"({"x": 1, "y": 2})"}, {R"({"z": 1})", R"({"y": 2, "x": 1})"}},
        {"additional_properties",
         R"({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"],
             "additionalProperties": {"type": "string"}})",
         {R"({"id": 1})", R"({"id": 1, "a": "x", "b": "y"})"}, {R"({"id": 1, "a": 2})", R"({"a": "x"})"}},
        {"free_object", R"({"type": "object"})", {"{}", R"({"any": [1, {"b": null}]})"}, {"[]", "1"}},
        {"array_bounds", R"({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3})",
         {"[1, 2]", "[1,2,3]"}, {"[]", "[1]", "[1, 2, 3, 4]", R"([1, "2"])"}},
        {"array_any", R"({"type": "array"})", {"[]", R"([1, "a", {"b": [true]}])"}, {"{}"}},
        {"tuple", R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]})",
         {R"(["a", 1])"}, {R"([1, "a"])", R"(["a"])"}},
        {"string_length", R"({"type": "string", "minLength": 2, "maxLength": 4})",
         {R"("ab")", R"("abcd")", R"("éé")"}, {R"("a")", R"("abcde")"}},
        {"nested",
         R"({"type": "object", "properties": {"user": {"type": "object", "properties": {
             "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["tags"]}}, "required": ["user"]})",
         {R"({"user": {"tags": []}})", R"({"user": {"tags": ["a", "b"]}})"}, {R"({"user": {"tags": [1]}})"}},
        {"ref_defs",
         R"({"$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
             "required": ["x", "y"]}}, "type": "array", "items": {"$ref": "#/$defs/point"}})",
         {R"([{"x": 1, "y": 2}])", "[]"}, {R"([{"x": 1}])"}},
        {"recursive_ref",
         R"({"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
             "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v", "kids"]}},
             "$ref": "#/$defs/node"})",
         {R"({"v": 1, "kids": [{"v": 2, "kids": []}]})"}, {R"({"v": 1, "kids": [{"v": 2}]})"}},
        {"any_of", R"({"anyOf": [{"type": "integer"}, {"type": "object", "properties": {"a": {"const": 1}}, "required": ["a"]}]})",
         {"5", R"({"a": 1})"}, {R"({"a": 2})", R"("5")"}},
        {"one_of", R"({"oneOf": [{"type": "string"}, {"type": "null"}]})", {R"("x")", "null"}, {"0"}},
        {"formats",
         R"({"type": "object", "properties": {"d": {"type": "string", "format": "date"},
             "t": {"type": "string", "format": "time"}, "dt": {"type": "string", "format": "date-time"},
             "u": {"type": "string", "format": "uuid"}}, "required": ["d", "t", "dt", "u"]})",
         {R"({"d": "2024-02-29", "t": "13:45:00Z", "dt": "2024-01-01T00:00:00.123+02:00", "u": "123e4567-e89b-12d3-a456-426614174000"})"},
         {R"({"d": "2024-13-01", "t": "13:45:00Z", "dt": "2024-01-01T00:00:00Z", "u": "123e4567-e89b-12d3-a456-426614174000"})",
          R"({"d": "2024-01-01", "t": "13:45:00Z", "dt": "2024-01-01T00:00:00Z", "u": "not-a-uuid"})"}},
        {"empty_schema", "{}", {"1", R"({"a": [null]})", R"("s")"}, {"nul"}},
    };
    return k;
}

std::string conversion_error(const char* schema) {
    try {
        json_schema_to_grammar(json::parse(schema));
    } catch (const json_schema_error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST(JsonSchema, TableOfSchemasAcceptsValidAndRejectsInvalidDocuments) {
    for (const schema_case& c : cases()) {
        SCOPED_TRACE(c.name);
        std::shared_ptr<const grammar> g;
        ASSERT_NO_THROW(g = json_schema_to_grammar(json::parse(c.schema))) << json_schema_to_gbnf(json::parse(c.schema));
        for (const std::string& doc : c.valid) EXPECT_TRUE(full_match(g, doc)) << "should accept: " << doc;
        for (const std::string& doc : c.invalid) EXPECT_FALSE(full_match(g, doc)) << "should reject: " << doc;
    }
}

TEST(JsonSchema, JsonObjectGrammarAcceptsAnyObject) {
    auto g = json_object_grammar();
    EXPECT_TRUE(full_match(g, R"({"a": [1, 2, {"b": "c"}], "d": -0.5e3, "e": null})"));
    EXPECT_TRUE(full_match(g, "{\n  \"x\": true\n}"));
    EXPECT_FALSE(full_match(g, "[1]"));
    EXPECT_FALSE(full_match(g, R"({"a": 1,})"));
    EXPECT_FALSE(full_match(g, "{" + std::string(30, ' ') + "}"));  // whitespace is bounded
}

TEST(JsonSchema, RefusesWhatItCannotFollowNamingWhere) {
    EXPECT_EQ(conversion_error(R"({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}})"),
              "JSON schema at /properties/age: 'minimum' is not supported");
    EXPECT_EQ(conversion_error(R"({"type": "string", "pattern": "^a+$"})"), "JSON schema at /: 'pattern' is not supported");
    EXPECT_EQ(conversion_error(R"({"type": "strin"})"), "JSON schema at /type: unknown type 'strin'");
    EXPECT_EQ(conversion_error(R"({"$ref": "#/$defs/missing"})"),
              "JSON schema at /: $ref '#/$defs/missing' points to nothing in the schema");
    EXPECT_EQ(conversion_error(R"({"$ref": "https://example.com/s.json"})"),
              "JSON schema at /: only local $ref (\"#/$defs/...\") is supported, got 'https://example.com/s.json'");
    EXPECT_EQ(conversion_error(R"({"type": "object", "properties": {"a": {}}, "required": ["b"]})"),
              "JSON schema at /required: 'b' is required but not in 'properties'");
    EXPECT_EQ(conversion_error(R"({"type": "array", "maxItems": 100000})"), "JSON schema at /: counts above 1000 are not supported");
    EXPECT_EQ(conversion_error(R"({"type": "array", "minItems": -1})"), "JSON schema at /minItems: must be a non-negative integer");
    EXPECT_EQ(conversion_error("[1]"), "JSON schema at /: a schema must be an object, got array");
}
