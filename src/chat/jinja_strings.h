// Python str semantics on UTF-8 strings (strip, split, title, format, ...) for the Jinja2
// builtins; code points are classified with utf8proc.
#pragma once
#include <string>
#include <vector>

#include "chat/jinja_value.h"

namespace edgellm::jinja {

std::u32string to_u32(const std::string& s);
std::string from_u32(const std::u32string& s);
bool py_isspace(char32_t c);

std::string py_strip(const std::string& s, const std::string* chars, bool left, bool right);
std::vector<std::string> py_split(const std::string& s, const std::string* sep, int64_t maxsplit, bool from_right);
std::vector<std::string> py_splitlines(const std::string& s);
std::string py_upper(const std::string& s);
std::string py_lower(const std::string& s);
std::string py_title(const std::string& s);       // str.title()
std::string jinja_title(const std::string& s);    // the |title filter (splits on -, space, brackets)
std::string py_capitalize(const std::string& s);
std::string py_swapcase(const std::string& s);
std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count);
int64_t py_count(const std::string& s, const std::string& sub);
int64_t py_find(const std::string& s, const std::string& sub, bool from_right);  // code point index or -1
bool py_is(const std::string& s, const std::string& which);                      // isdigit, isalpha, ...
std::string py_pad(const std::string& s, const std::string& how, int64_t width, const std::string& fill);
std::string py_str_format(const std::string& fmt, const call_args& args);                // "{} {0} {name}"
std::string py_percent_format(const std::string& fmt, const call_args& args, const value* mapping);  // "%s %d"
std::string html_escape(const std::string& s);
int64_t word_count(const std::string& s);

}  // namespace edgellm::jinja
