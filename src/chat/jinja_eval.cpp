// Jinja2 evaluator: walks the syntax tree with jinja2's scoping (for bodies and macros get
// their own scope; if/set do not), loop variables, macros with caller(), and run limits.
#include <cmath>

#include "chat/jinja.h"
#include "chat/jinja_ast.h"

namespace edgellm::jinja {

namespace {
std::string at_line(int line) { return line > 0 ? " (line " + std::to_string(line) + ")" : ""; }

// Adds the template line to errors raised below a node, once.
template <typename F>
auto with_line(int line, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const template_error& e) {
        std::string msg = e.what();
        if (msg.find(" (line ") != std::string::npos || msg.rfind("template syntax error", 0) == 0) throw;
        throw template_error(msg + at_line(line));
    }
}
}  // namespace

context::context(const render_options& o, value globals)
    : scope(std::make_shared<frame>()), opts(o), globals_(std::move(globals)) {}

value context::lookup(const std::string& name) const {
    for (const frame* f = scope.get(); f; f = f->parent.get()) {
        auto it = f->vars.find(name);
        if (it != f->vars.end()) return it->second;
    }
    if (const value* g = globals_.dict().find(name)) return *g;
    return value::undefined("'" + name + "' is undefined");
}

void context::tick() {
    if (++steps_ > opts.max_steps)
        throw template_error("template exceeded the evaluation step limit (" + std::to_string(opts.max_steps) +
                             "): runaway loop?");
}

context::depth_guard::depth_guard(context& ctx) : c(ctx) {
    if (++c.depth_ > c.opts.max_depth) {
        --c.depth_;
        throw template_error("template exceeded the call depth limit (" + std::to_string(c.opts.max_depth) +
                             "): runaway recursion?");
    }
}

flow render_body(const node_list& body, context& ctx, std::string& out) {
    for (const auto& n : body) {
        ctx.tick();
        flow f = n->render(ctx, out);
        if (out.size() > ctx.opts.max_output_bytes) throw template_error("template output exceeds the size limit");
        if (f != flow::normal) return f;
    }
    return flow::normal;
}

// ---- expressions ----
value name_expr::eval(context& ctx) const { return ctx.lookup(name); }

value list_expr::eval(context& ctx) const {
    value_list out;
    for (const auto& e : items) out.push_back(e->eval(ctx));
    return tuple ? value::make_tuple(std::move(out)) : value::make_list(std::move(out));
}

value dict_expr::eval(context& ctx) const {
    value d = value::make_dict();
    for (const auto& [k, v] : items) {
        value key = k->eval(ctx);
        if (!key.is_string()) {
            // Chat templates only use string keys; other keys keep their Python str() form.
            d.dict().set(key.str(), v->eval(ctx));
        } else {
            d.dict().set(key.as_string(), v->eval(ctx));
        }
    }
    return d;
}

value getattr_expr::eval(context& ctx) const {
    value o = obj->eval(ctx);
    return with_line(line, [&] { return get_attribute(o, name); });
}

value getitem_expr::eval(context& ctx) const {
    value o = obj->eval(ctx);
    value k = index->eval(ctx);
    return with_line(line, [&] { return get_item(o, k); });
}

namespace {
// Python slice index normalisation for a sequence of length n.
void slice_indices(const value& start_v, const value& stop_v, const value& step_v, int64_t n, int64_t& start,
                   int64_t& stop, int64_t& step) {
    auto as_index = [](const value& v) -> std::optional<int64_t> {
        if (v.is_undefined() || v.is_none()) return std::nullopt;
        if (!v.is_int() && !v.is_bool()) throw template_error("slice indices must be integers or None");
        return v.as_int();
    };
    step = as_index(step_v).value_or(1);
    if (step == 0) throw template_error("slice step cannot be zero");
    auto norm = [&](std::optional<int64_t> i, int64_t def) {
        if (!i) return def;
        int64_t x = *i;
        if (x < 0) x += n;
        if (step > 0) return std::clamp<int64_t>(x, 0, n);
        return std::clamp<int64_t>(x, -1, n - 1);
    };
    start = norm(as_index(start_v), step > 0 ? 0 : n - 1);
    stop = norm(as_index(stop_v), step > 0 ? n : -1);
}
}  // namespace

value slice_expr::eval(context& ctx) const {
    value o = obj->eval(ctx);
    value a = start ? start->eval(ctx) : value::none();
    value b = stop ? stop->eval(ctx) : value::none();
    value c = step ? step->eval(ctx) : value::none();
    return with_line(line, [&]() -> value {
        value_list items;
        std::vector<std::string> chars;
        if (o.is_string()) {
            chars = utf8_chars(o.as_string());
        } else if (o.is_list()) {
            items = o.list();
        } else if (o.is_undefined()) {
            undefined_error(o);
        } else {
            throw template_error("'" + o.type_name() + "' object is not subscriptable");
        }
        int64_t n = o.is_string() ? static_cast<int64_t>(chars.size()) : static_cast<int64_t>(items.size());
        int64_t s, e, st;
        slice_indices(a, b, c, n, s, e, st);
        if (o.is_string()) {
            std::string out;
            for (int64_t i = s; st > 0 ? i < e : i > e; i += st) out += chars[i];
            return value(std::move(out));
        }
        value_list out;
        for (int64_t i = s; st > 0 ? i < e : i > e; i += st) out.push_back(items[i]);
        return value::make_list(std::move(out));
    });
}

call_args eval_call_args(const std::vector<call_arg>& args, context& ctx) {
    call_args out;
    for (const auto& a : args) {
        value v = a.e->eval(ctx);
        if (a.star == 1) {
            for (auto& x : v.iterate()) out.pos.push_back(std::move(x));
        } else if (a.star == 2) {
            if (!v.is_dict()) throw template_error("argument after ** must be a mapping");
            for (const auto& kv : v.dict().items) out.kw.push_back(kv);
        } else if (a.name.empty()) {
            out.pos.push_back(std::move(v));
        } else {
            out.kw.emplace_back(a.name, std::move(v));
        }
    }
    return out;
}

value call_expr::eval(context& ctx) const {
    value fn = callee->eval(ctx);
    call_args args = eval_call_args(this->args, ctx);
    return with_line(line, [&] { return call_value(ctx, fn, args, line); });
}

value filter_expr::apply(context& ctx, value in) const {
    call_args a = eval_call_args(args, ctx);
    return with_line(line, [&] { return apply_filter(ctx, name, std::move(in), a); });
}

value filter_expr::eval(context& ctx) const { return apply(ctx, input->eval(ctx)); }

value test_expr::eval(context& ctx) const {
    value in = input->eval(ctx);
    call_args a = eval_call_args(args, ctx);
    bool r = with_line(line, [&] { return apply_test(ctx, name, in, a); });
    return value(negated ? !r : r);
}

value unary_expr::eval(context& ctx) const {
    value v = operand->eval(ctx);
    if (op == "not") return value(!v.truthy());
    return with_line(line, [&]() -> value {
        if (v.is_undefined()) undefined_error(v);
        if (!v.is_number()) throw template_error("bad operand type for unary " + op + ": '" + v.type_name() + "'");
        if (op == "+") return v.is_bool() ? value(v.as_int()) : v;
        if (v.is_float()) return value(-v.as_double());
        return value(-v.as_int());
    });
}

namespace {
bool contains(const value& container, const value& item) {
    if (container.is_string()) {
        if (!item.is_string())
            throw template_error("'in <string>' requires string as left operand, not " + item.type_name());
        return container.as_string().find(item.as_string()) != std::string::npos;
    }
    if (container.is_dict()) return item.is_string() && container.dict().find(item.as_string()) != nullptr;
    if (container.is_list()) {
        for (const auto& x : container.list())
            if (values_equal(x, item)) return true;
        return false;
    }
    if (container.is_undefined()) return false;
    throw template_error("argument of type '" + container.type_name() + "' is not iterable");
}

bool compare(const std::string& op, const value& a, const value& b) {
    if (op == "==") return values_equal(a, b);
    if (op == "!=") return !values_equal(a, b);
    if (op == "in") return contains(b, a);
    if (op == "notin") return !contains(b, a);
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    if (op == "<") return value_less(a, b);
    if (op == ">") return value_less(b, a);
    if (op == "<=") return !value_less(b, a);
    return !value_less(a, b);  // >=
}
}  // namespace

value binary_expr::eval(context& ctx) const {
    value l = left->eval(ctx);
    if (op == "and") return l.truthy() ? right->eval(ctx) : l;
    if (op == "or") return l.truthy() ? l : right->eval(ctx);
    value r = right->eval(ctx);
    if (op == "~") return value(l.str() + r.str());
    return with_line(line, [&] { return arithmetic(op, l, r); });
}

value compare_expr::eval(context& ctx) const {
    value l = first->eval(ctx);
    for (const auto& item : rest) {
        const std::string& op = item.first;  // named, not a structured binding: lambdas capture it
        value r = item.second->eval(ctx);
        bool ok = with_line(line, [&] { return compare(op, l, r); });
        if (!ok) return value(false);
        l = std::move(r);
    }
    return value(true);
}

value cond_expr::eval(context& ctx) const {
    if (cond->eval(ctx).truthy()) return then_e->eval(ctx);
    if (else_e) return else_e->eval(ctx);
    return value::undefined("the inline if-expression evaluated to false and no else section was defined");
}

// ---- statements ----
flow output_node::render(context& ctx, std::string& out) const {
    value v = e->eval(ctx);
    out += v.str();
    return flow::normal;
}

flow if_node::render(context& ctx, std::string& out) const {
    for (const auto& [cond, body] : branches)
        if (cond->eval(ctx).truthy()) return render_body(body, ctx, out);
    return render_body(else_body, ctx, out);
}

flow for_node::render(context& ctx, std::string& out) const {
    value seq = iter->eval(ctx);
    return run(ctx, out, seq, 1);
}

flow for_node::run(context& ctx, std::string& out, const value& seq, int depth) const {
    value_list all = with_line(line, [&] { return seq.iterate(); });
    // Every iteration gets a fresh scope: jinja2 does not carry `set` across iterations.
    auto outer = ctx.scope;
    auto fresh_scope = [&] {
        auto s = std::make_shared<frame>();
        s->parent = outer;
        ctx.scope = s;
    };
    fresh_scope();
    struct restore {
        context& c;
        std::shared_ptr<frame> s;
        ~restore() { c.scope = s; }
    } restore_scope{ctx, outer};

    auto bind = [&](const value& item) {
        if (targets.size() == 1) {
            ctx.set(targets[0], item);
            return;
        }
        value_list parts = item.iterate();
        if (parts.size() != targets.size())
            throw template_error("cannot unpack " + std::to_string(parts.size()) + " values into " +
                                 std::to_string(targets.size()) + " loop variables" + at_line(line));
        for (size_t i = 0; i < targets.size(); ++i) ctx.set(targets[i], parts[i]);
    };
    value_list items;
    if (cond) {
        for (const auto& x : all) {
            ctx.tick();
            bind(x);
            if (cond->eval(ctx).truthy()) items.push_back(x);
        }
    } else {
        items = std::move(all);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
        ctx.tick();
        fresh_scope();
        value loop = value::make_dict();
        auto& d = loop.dict();
        d.set("index", value(i + 1));
        d.set("index0", value(i));
        d.set("revindex", value(n - i));
        d.set("revindex0", value(n - i - 1));
        d.set("first", value(i == 0));
        d.set("last", value(i == n - 1));
        d.set("length", value(n));
        d.set("depth", value(static_cast<int64_t>(depth)));
        d.set("depth0", value(static_cast<int64_t>(depth - 1)));
        d.set("previtem", i > 0 ? items[i - 1] : value::undefined("there is no previous item"));
        d.set("nextitem", i + 1 < n ? items[i + 1] : value::undefined("there is no next item"));
        d.set("cycle", value::make_function("cycle", [i](call_args& a) -> value {
                  if (a.pos.empty()) throw template_error("no items for cycling given");
                  return a.pos[i % a.pos.size()];
              }));
        if (recursive) {
            d.set("__call__", value::make_function("loop", [this, &ctx, &out, depth](call_args& a) -> value {
                      if (a.pos.size() != 1) throw template_error("loop() takes exactly one argument");
                      context::depth_guard g(ctx);
                      std::string sub;
                      run(ctx, sub, a.pos[0], depth + 1);
                      return value(std::move(sub));
                  }));
        }
        ctx.set("loop", loop);
        bind(items[i]);
        flow f = render_body(body, ctx, out);
        if (f == flow::break_loop) break;
    }
    if (n == 0) return render_body(else_body, ctx, out);
    return flow::normal;
}

void assign(context& ctx, const set_target& target, value v, int line) {
    if (!target.attr.empty()) {
        value ns = ctx.lookup(target.names[0]);
        if (!ns.is_dict() || !ns.dict().is_namespace)
            throw template_error("can only set attributes on namespace objects" + at_line(line));
        ns.dict().set(target.attr, std::move(v));
        return;
    }
    if (target.names.size() == 1) {
        ctx.set(target.names[0], std::move(v));
        return;
    }
    value_list parts = v.iterate();
    if (parts.size() != target.names.size())
        throw template_error("cannot unpack " + std::to_string(parts.size()) + " values into " +
                             std::to_string(target.names.size()) + " names" + at_line(line));
    for (size_t i = 0; i < parts.size(); ++i) ctx.set(target.names[i], parts[i]);
}

flow set_node::render(context& ctx, std::string&) const {
    assign(ctx, target, e->eval(ctx), line);
    return flow::normal;
}

flow set_block_node::render(context& ctx, std::string&) const {
    std::string captured;
    render_body(body, ctx, captured);
    value v(std::move(captured));
    for (const auto& f : filters) v = f->apply(ctx, std::move(v));
    assign(ctx, target, std::move(v), line);
    return flow::normal;
}

value macro_node::make_callable(context& ctx) const {
    // A weak reference: the macro is stored in the scope it closes over, and a strong one would
    // make a reference cycle that is never freed. A macro that outlives its scope (copied out
    // of it) resolves free names in the caller's scope instead.
    std::weak_ptr<frame> def_scope_ref = ctx.scope;
    return value::make_function(name, [this, &ctx, def_scope_ref](call_args& a) -> value {
        context::depth_guard g(ctx);
        auto call_scope = std::make_shared<frame>();
        auto def_scope = def_scope_ref.lock();
        call_scope->parent = def_scope ? def_scope : ctx.scope;
        size_t n_pos = std::min(a.pos.size(), params.size());
        auto saved = ctx.scope;
        ctx.scope = call_scope;
        struct restore {
            context& c;
            std::shared_ptr<frame> s;
            ~restore() { c.scope = s; }
        } restore_scope{ctx, saved};
        value kwargs = value::make_dict();
        for (size_t i = 0; i < params.size(); ++i) {
            const auto& [pname, def] = params[i];
            const value* kw = nullptr;
            for (const auto& kv : a.kw)
                if (kv.first == pname) kw = &kv.second;
            if (i < n_pos) ctx.set(pname, a.pos[i]);
            else if (kw) ctx.set(pname, *kw);
            else if (def) ctx.set(pname, def->eval(ctx));
            else ctx.set(pname, value::undefined("parameter '" + pname + "' was not provided"));
        }
        for (const auto& kv : a.kw) {
            bool known = kv.first == "caller";
            for (const auto& p : params) known = known || p.first == kv.first;
            if (!known) kwargs.dict().set(kv.first, kv.second);
        }
        value_list extra(a.pos.begin() + static_cast<std::ptrdiff_t>(n_pos), a.pos.end());
        ctx.set("varargs", value::make_list(std::move(extra)));
        ctx.set("kwargs", kwargs);
        for (const auto& kv : a.kw)
            if (kv.first == "caller") ctx.set("caller", kv.second);
        std::string out;
        render_body(body, ctx, out);
        return value(std::move(out));
    });
}

flow macro_node::render(context& ctx, std::string&) const {
    ctx.set(name, make_callable(ctx));
    return flow::normal;
}

flow call_block_node::render(context& ctx, std::string& out) const {
    value fn = call->callee->eval(ctx);
    call_args args = eval_call_args(call->args, ctx);
    args.kw.emplace_back("caller", caller->make_callable(ctx));
    value r = with_line(line, [&] { return call_value(ctx, fn, args, line); });
    out += r.str();
    return flow::normal;
}

flow filter_block_node::render(context& ctx, std::string& out) const {
    std::string captured;
    render_body(body, ctx, captured);
    value v(std::move(captured));
    for (const auto& f : filters) v = f->apply(ctx, std::move(v));
    out += v.str();
    return flow::normal;
}

std::string template_program::render(const value& vars, const render_options& opts) const {
    context ctx(opts, make_global_functions(opts));
    if (vars.is_dict())
        for (const auto& [k, v] : vars.dict().items) ctx.set(k, v);
    else if (!vars.is_undefined() && !vars.is_none())
        throw template_error("template context must be a dict, got " + vars.type_name());
    auto top = std::make_shared<frame>();
    top->parent = ctx.scope;
    ctx.scope = top;
    std::string out;
    render_body(*body_, ctx, out);
    return out;
}

}  // namespace edgellm::jinja
