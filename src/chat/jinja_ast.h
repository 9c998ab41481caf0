// Syntax tree of a parsed Jinja2 template, and the evaluation context that walks it.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "chat/jinja_value.h"

namespace edgellm::jinja {

struct render_options;

// One variable scope; for-loop bodies and macro calls push a new one.
struct frame {
    std::unordered_map<std::string, value> vars;
    std::shared_ptr<frame> parent;
};

class context {
public:
    context(const render_options& opts, value globals);

    value lookup(const std::string& name) const;
    void set(const std::string& name, value v) { scope->vars[name] = std::move(v); }

    // Counts evaluation steps and call depth against the limits in render_options.
    void tick();
    struct depth_guard {
        context& c;
        explicit depth_guard(context& ctx);
        ~depth_guard() { --c.depth_; }
    };

    std::shared_ptr<frame> scope;
    const render_options& opts;

private:
    value globals_;
    int depth_ = 0;
    uint64_t steps_ = 0;
};

struct expr {
    int line = 0;
    virtual ~expr() = default;
    virtual value eval(context& ctx) const = 0;
};
using expr_ptr = std::unique_ptr<expr>;

enum class flow { normal, break_loop, continue_loop };

struct node {
    int line = 0;
    virtual ~node() = default;
    virtual flow render(context& ctx, std::string& out) const = 0;
};
using node_ptr = std::unique_ptr<node>;
using node_list = std::vector<node_ptr>;

flow render_body(const node_list& body, context& ctx, std::string& out);

// ---- expressions ----
struct const_expr : expr {
    value v;
    value eval(context&) const override { return v; }
};
struct name_expr : expr {
    std::string name;
    value eval(context& ctx) const override;
};
struct list_expr : expr {
    std::vector<expr_ptr> items;
    bool tuple = false;
    value eval(context& ctx) const override;
};
struct dict_expr : expr {
    std::vector<std::pair<expr_ptr, expr_ptr>> items;
    value eval(context& ctx) const override;
};
struct getattr_expr : expr {
    expr_ptr obj;
    std::string name;
    value eval(context& ctx) const override;
};
struct getitem_expr : expr {
    expr_ptr obj, index;
    value eval(context& ctx) const override;
};
struct slice_expr : expr {
    expr_ptr obj, start, stop, step;
    value eval(context& ctx) const override;
};
struct call_arg {
    std::string name;  // empty for positional
    int star = 0;      // 1 for *args, 2 for **kwargs
    expr_ptr e;
};
call_args eval_call_args(const std::vector<call_arg>& args, context& ctx);
struct call_expr : expr {
    expr_ptr callee;
    std::vector<call_arg> args;
    value eval(context& ctx) const override;
};
struct filter_expr : expr {
    expr_ptr input;  // null inside {% filter %} blocks
    std::string name;
    std::vector<call_arg> args;
    value eval(context& ctx) const override;
    value apply(context& ctx, value in) const;
};
struct test_expr : expr {
    expr_ptr input;
    std::string name;
    std::vector<call_arg> args;
    bool negated = false;
    value eval(context& ctx) const override;
};
struct unary_expr : expr {
    std::string op;  // not, -, +
    expr_ptr operand;
    value eval(context& ctx) const override;
};
struct binary_expr : expr {
    std::string op;  // or and + - * / // % ** ~ in notin
    expr_ptr left, right;
    value eval(context& ctx) const override;
};
struct compare_expr : expr {
    expr_ptr first;
    std::vector<std::pair<std::string, expr_ptr>> rest;  // == != < <= > >= in notin
    value eval(context& ctx) const override;
};
struct cond_expr : expr {
    expr_ptr cond, then_e, else_e;  // else_e may be null (gives undefined)
    value eval(context& ctx) const override;
};

// ---- statements ----
struct text_node : node {
    std::string text;
    flow render(context&, std::string& out) const override {
        out += text;
        return flow::normal;
    }
};
struct output_node : node {
    expr_ptr e;
    flow render(context& ctx, std::string& out) const override;
};
struct if_node : node {
    std::vector<std::pair<expr_ptr, node_list>> branches;
    node_list else_body;
    flow render(context& ctx, std::string& out) const override;
};
struct for_node : node {
    std::vector<std::string> targets;
    expr_ptr iter, cond;
    node_list body, else_body;
    bool recursive = false;
    flow render(context& ctx, std::string& out) const override;
    flow run(context& ctx, std::string& out, const value& seq, int depth) const;
};
// Assignment target: a name, `ns.attr`, or a tuple of names.
struct set_target {
    std::vector<std::string> names;
    std::string attr;  // non-empty for ns.attr (names[0] is the namespace)
};
void assign(context& ctx, const set_target& target, value v, int line);
struct set_node : node {
    set_target target;
    expr_ptr e;
    flow render(context& ctx, std::string& out) const override;
};
struct set_block_node : node {
    set_target target;
    node_list body;
    std::vector<std::unique_ptr<filter_expr>> filters;
    flow render(context& ctx, std::string& out) const override;
};
struct macro_node : node {
    std::string name;
    std::vector<std::pair<std::string, expr_ptr>> params;  // default may be null
    node_list body;
    flow render(context& ctx, std::string& out) const override;
    value make_callable(context& ctx) const;
};
struct call_block_node : node {
    std::unique_ptr<call_expr> call;
    std::unique_ptr<macro_node> caller;
    flow render(context& ctx, std::string& out) const override;
};
struct filter_block_node : node {
    std::vector<std::unique_ptr<filter_expr>> filters;
    node_list body;
    flow render(context& ctx, std::string& out) const override;
};
struct loop_control_node : node {
    flow kind = flow::break_loop;
    flow render(context&, std::string&) const override { return kind; }
};

// ---- builtins (jinja_builtins.cpp) ----
bool has_filter(const std::string& name);
bool has_test(const std::string& name);
value apply_filter(context& ctx, const std::string& name, value in, call_args& args);
bool apply_test(context& ctx, const std::string& name, const value& in, call_args& args);
// Attribute/item access with jinja2's sandboxed semantics (methods of str/dict/list included).
value get_attribute(const value& obj, const std::string& name);
value get_item(const value& obj, const value& key);
value call_value(context& ctx, const value& fn, call_args& args, int line);
value make_global_functions(const render_options& opts);
// Python-semantics binary operators (+ - * / // % **) on values.
value arithmetic(const std::string& op, const value& a, const value& b);
[[noreturn]] void undefined_error(const value& undef);

}  // namespace edgellm::jinja
