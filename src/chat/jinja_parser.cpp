// Jinja2 parser: tokens to syntax tree, following the grammar and operator precedence of
// jinja2/parser.py (condexpr < or < and < not < compare < +- < ~ < */ // % < ** < unary,
// then postfix access/calls and | filters / is tests).
#include <algorithm>
#include <set>

#include "chat/jinja.h"
#include "chat/jinja_ast.h"

namespace edgellm::jinja {

namespace {

class parser {
public:
    explicit parser(std::vector<token> toks) : toks_(std::move(toks)) {}

    node_list parse_template() {
        std::string end;
        node_list body = parse_body({}, end);
        return body;
    }

private:
    std::vector<token> toks_;
    size_t i_ = 0;
    int depth_ = 0;

    // Bounds recursion on hostile input ("((((...", "not not not ...", deeply nested tags).
    struct nest {
        parser& p;
        explicit nest(parser& ps) : p(ps) {
            if (++p.depth_ > 1000) p.fail(p.cur(), "template nests too deeply");
        }
        ~nest() { --p.depth_; }
    };

    const token& cur() const { return toks_[i_]; }
    const token& peek(size_t k = 1) const { return toks_[std::min(i_ + k, toks_.size() - 1)]; }
    const token& next() {
        const token& t = toks_[i_];
        if (i_ + 1 < toks_.size()) ++i_;
        return t;
    }
    bool is_op(const char* op) const { return cur().kind == token_kind::op && cur().text == op; }
    bool is_name(const char* n) const { return cur().kind == token_kind::name && cur().text == n; }
    bool skip_op(const char* op) {
        if (!is_op(op)) return false;
        next();
        return true;
    }
    bool skip_name(const char* n) {
        if (!is_name(n)) return false;
        next();
        return true;
    }

    static std::string describe(const token& t) {
        switch (t.kind) {
            case token_kind::text: return "template text";
            case token_kind::var_begin: return "'{{'";
            case token_kind::var_end: return "'}}'";
            case token_kind::block_begin: return "'{%'";
            case token_kind::block_end: return "'%}'";
            case token_kind::name: return "'" + t.text + "'";
            case token_kind::string: return "string literal";
            case token_kind::integer:
            case token_kind::floating: return "number '" + t.text + "'";
            case token_kind::op: return "'" + t.text + "'";
            case token_kind::eof: return "end of template";
        }
        return "token";
    }

    [[noreturn]] void fail(const token& t, const std::string& msg) const {
        throw template_error("template syntax error at line " + std::to_string(t.line) + ", column " +
                             std::to_string(t.column) + ": " + msg);
    }
    [[noreturn]] void fail_unexpected(const std::string& expected) const {
        fail(cur(), "expected " + expected + ", got " + describe(cur()));
    }

    void expect_op(const char* op) {
        if (!skip_op(op)) fail_unexpected(std::string("'") + op + "'");
    }
    std::string expect_name() {
        if (cur().kind != token_kind::name) fail_unexpected("a name");
        return next().text;
    }
    void expect_block_end() {
        if (cur().kind != token_kind::block_end) fail_unexpected("end of statement '%}'");
        next();
    }

    template <typename T>
    std::unique_ptr<T> make(const token& at) {
        auto p = std::make_unique<T>();
        p->line = at.line;
        return p;
    }

    // Parses nodes until a {% tag %} whose keyword is in `ends`; `found` gets that keyword and
    // the stream is left just after it.
    node_list parse_body(const std::set<std::string>& ends, std::string& found) {
        node_list body;
        while (true) {
            const token& t = cur();
            if (t.kind == token_kind::eof) {
                if (ends.empty()) return body;
                std::string list;
                for (const auto& e : ends) list += (list.empty() ? "'" : " or '") + e + "'";
                fail(t, "unexpected end of template, expected " + list);
            }
            if (t.kind == token_kind::text) {
                auto n = make<text_node>(t);
                n->text = t.text;
                next();
                body.push_back(std::move(n));
            } else if (t.kind == token_kind::var_begin) {
                next();
                auto n = make<output_node>(t);
                n->e = parse_tuple(true, false);
                if (cur().kind != token_kind::var_end) fail_unexpected("end of print statement '}}'");
                next();
                body.push_back(std::move(n));
            } else if (t.kind == token_kind::block_begin) {
                next();
                const token& kw = cur();
                if (kw.kind != token_kind::name) fail_unexpected("a statement keyword");
                if (ends.count(kw.text)) {
                    found = kw.text;
                    next();
                    return body;
                }
                body.push_back(parse_statement());
            } else {
                fail(t, "unexpected " + describe(t));
            }
        }
    }

    node_list parse_until(const std::set<std::string>& ends, std::string& found) {
        expect_block_end();
        return parse_body(ends, found);
    }

    node_ptr parse_statement() {
        nest guard(*this);
        const token& kw = next();
        const std::string& k = kw.text;
        std::string found;
        if (k == "if") {
            auto n = make<if_node>(kw);
            expr_ptr cond = parse_tuple(false, false);
            while (true) {
                node_list body = parse_until({"elif", "else", "endif"}, found);
                n->branches.emplace_back(std::move(cond), std::move(body));
                if (found == "elif") {
                    cond = parse_tuple(false, false);
                    continue;
                }
                if (found == "else") n->else_body = parse_until({"endif"}, found);
                break;
            }
            expect_block_end();
            return n;
        }
        if (k == "for") {
            auto n = make<for_node>(kw);
            n->targets = parse_target_names();
            if (!skip_name("in")) fail_unexpected("'in'");
            n->iter = parse_tuple(false, false, true);
            if (skip_name("if")) n->cond = parse_expression();
            if (skip_name("recursive")) n->recursive = true;
            n->body = parse_until({"endfor", "else"}, found);
            if (found == "else") n->else_body = parse_until({"endfor"}, found);
            expect_block_end();
            return n;
        }
        if (k == "set") {
            set_target target = parse_set_target();
            if (skip_op("=")) {
                auto n = make<set_node>(kw);
                n->target = std::move(target);
                n->e = parse_tuple(true, false);
                expect_block_end();
                return n;
            }
            auto n = make<set_block_node>(kw);
            n->target = std::move(target);
            while (is_op("|")) n->filters.push_back(parse_filter_item(nullptr));
            n->body = parse_until({"endset"}, found);
            expect_block_end();
            return n;
        }
        if (k == "macro") {
            auto n = make<macro_node>(kw);
            n->name = expect_name();
            parse_macro_params(*n);
            n->body = parse_until({"endmacro"}, found);
            if (cur().kind == token_kind::name) next();  // {% endmacro name %}
            expect_block_end();
            return n;
        }
        if (k == "call") {
            auto n = make<call_block_node>(kw);
            n->caller = make<macro_node>(kw);
            n->caller->name = "caller";
            if (is_op("(")) parse_macro_params(*n->caller);
            expr_ptr e = parse_expression();
            auto* call = dynamic_cast<call_expr*>(e.get());
            if (!call) fail(kw, "expected a call expression after 'call'");
            e.release();
            n->call.reset(call);
            n->caller->body = parse_until({"endcall"}, found);
            expect_block_end();
            return n;
        }
        if (k == "filter") {
            auto n = make<filter_block_node>(kw);
            n->filters.push_back(parse_filter_item(nullptr, true));
            while (is_op("|")) n->filters.push_back(parse_filter_item(nullptr));
            n->body = parse_until({"endfilter"}, found);
            expect_block_end();
            return n;
        }
        if (k == "break" || k == "continue") {
            auto n = make<loop_control_node>(kw);
            n->kind = k == "break" ? flow::break_loop : flow::continue_loop;
            expect_block_end();
            return n;
        }
        if (k == "generation") {
            // HF's AssistantTracker extension: renders its body unchanged.
            auto n = make<if_node>(kw);
            auto always = make<const_expr>(kw);
            always->v = value(true);
            n->branches.emplace_back(std::move(always), parse_until({"endgeneration"}, found));
            expect_block_end();
            return n;
        }
        fail(kw, "Encountered unknown tag '" + k + "'.");
    }

    void parse_macro_params(macro_node& m) {
        expect_op("(");
        while (!is_op(")")) {
            if (!m.params.empty()) expect_op(",");
            if (is_op(")")) break;
            std::string name = expect_name();
            expr_ptr def;
            if (skip_op("=")) def = parse_expression();
            m.params.emplace_back(std::move(name), std::move(def));
        }
        next();
    }

    std::vector<std::string> parse_target_names() {
        std::vector<std::string> names;
        bool paren = skip_op("(");
        do {
            if (paren && is_op(")")) break;
            names.push_back(expect_name());
        } while (skip_op(","));
        if (paren) expect_op(")");
        return names;
    }

    set_target parse_set_target() {
        set_target t;
        if (cur().kind == token_kind::name && peek().kind == token_kind::op && peek().text == ".") {
            t.names.push_back(next().text);
            next();
            t.attr = expect_name();
            return t;
        }
        t.names = parse_target_names();
        return t;
    }

    // ---- expressions ----
    expr_ptr parse_expression(bool with_condexpr = true) {
        return with_condexpr ? parse_condexpr() : parse_or();
    }

    bool tuple_end(bool for_iter) const {
        if (cur().kind == token_kind::var_end || cur().kind == token_kind::block_end ||
            cur().kind == token_kind::eof)
            return true;
        if (is_op(")")) return true;
        if (for_iter && (is_name("if") || is_name("recursive"))) return true;
        return false;
    }

    // A comma-separated tuple or a single expression (jinja2's parse_tuple).
    expr_ptr parse_tuple(bool with_condexpr, bool explicit_parens, bool for_iter = false) {
        const token& start = cur();
        std::vector<expr_ptr> items;
        bool is_tuple = false;
        while (true) {
            if (!items.empty()) expect_op(",");
            if (tuple_end(for_iter)) break;
            items.push_back(parse_expression(with_condexpr));
            if (is_op(",")) is_tuple = true;
            else break;
        }
        if (!is_tuple) {
            if (!items.empty()) return std::move(items[0]);
            if (!explicit_parens) fail_unexpected("an expression");
        }
        auto l = make<list_expr>(start);
        l->items = std::move(items);
        l->tuple = true;
        return l;
    }

    expr_ptr parse_condexpr() {
        nest guard(*this);
        const token& start = cur();
        expr_ptr e = parse_or();
        while (skip_name("if")) {
            auto c = make<cond_expr>(start);
            c->then_e = std::move(e);
            c->cond = parse_or();
            if (skip_name("else")) c->else_e = parse_condexpr();
            e = std::move(c);
        }
        return e;
    }

    expr_ptr binary(const token& at, std::string op, expr_ptr l, expr_ptr r) {
        auto b = make<binary_expr>(at);
        b->op = std::move(op);
        b->left = std::move(l);
        b->right = std::move(r);
        return b;
    }

    expr_ptr parse_or() {
        expr_ptr l = parse_and();
        while (is_name("or")) {
            const token& at = next();
            l = binary(at, "or", std::move(l), parse_and());
        }
        return l;
    }
    expr_ptr parse_and() {
        expr_ptr l = parse_not();
        while (is_name("and")) {
            const token& at = next();
            l = binary(at, "and", std::move(l), parse_not());
        }
        return l;
    }
    expr_ptr parse_not() {
        nest guard(*this);
        if (is_name("not")) {
            auto u = make<unary_expr>(next());
            u->op = "not";
            u->operand = parse_not();
            return u;
        }
        return parse_compare();
    }
    expr_ptr parse_compare() {
        const token& start = cur();
        expr_ptr first = parse_math1();
        std::vector<std::pair<std::string, expr_ptr>> rest;
        while (true) {
            static const std::set<std::string> ops{"==", "!=", "<", "<=", ">", ">="};
            if (cur().kind == token_kind::op && ops.count(cur().text)) {
                std::string op = next().text;
                rest.emplace_back(op, parse_math1());
            } else if (skip_name("in")) {
                rest.emplace_back("in", parse_math1());
            } else if (is_name("not") && peek().kind == token_kind::name && peek().text == "in") {
                next();
                next();
                rest.emplace_back("notin", parse_math1());
            } else {
                break;
            }
        }
        if (rest.empty()) return first;
        auto c = make<compare_expr>(start);
        c->first = std::move(first);
        c->rest = std::move(rest);
        return c;
    }
    expr_ptr parse_math1() {
        expr_ptr l = parse_concat();
        while (is_op("+") || is_op("-")) {
            const token& at = next();
            l = binary(at, at.text, std::move(l), parse_concat());
        }
        return l;
    }
    expr_ptr parse_concat() {
        expr_ptr l = parse_math2();
        while (is_op("~")) {
            const token& at = next();
            l = binary(at, "~", std::move(l), parse_math2());
        }
        return l;
    }
    expr_ptr parse_math2() {
        expr_ptr l = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const token& at = next();
            l = binary(at, at.text, std::move(l), parse_pow());
        }
        return l;
    }
    expr_ptr parse_pow() {
        expr_ptr l = parse_unary(true);
        while (is_op("**")) {
            const token& at = next();
            l = binary(at, "**", std::move(l), parse_unary(true));
        }
        return l;
    }
    expr_ptr parse_unary(bool with_filter) {
        nest guard(*this);
        expr_ptr e;
        if (is_op("-") || is_op("+")) {
            auto u = make<unary_expr>(cur());
            u->op = next().text;
            u->operand = parse_unary(false);
            e = std::move(u);
        } else {
            e = parse_primary();
        }
        e = parse_postfix(std::move(e));
        if (with_filter) e = parse_filter_expr(std::move(e));
        return e;
    }

    expr_ptr parse_primary() {
        const token& t = cur();
        switch (t.kind) {
            case token_kind::name: {
                next();
                auto c = make<const_expr>(t);
                if (t.text == "true" || t.text == "True") c->v = value(true);
                else if (t.text == "false" || t.text == "False") c->v = value(false);
                else if (t.text == "none" || t.text == "None") c->v = value::none();
                else {
                    auto n = make<name_expr>(t);
                    n->name = t.text;
                    return n;
                }
                return c;
            }
            case token_kind::string: {
                std::string s;
                while (cur().kind == token_kind::string) s += next().text;
                auto c = make<const_expr>(t);
                c->v = value(std::move(s));
                return c;
            }
            case token_kind::integer:
            case token_kind::floating: {
                next();
                auto c = make<const_expr>(t);
                c->v = t.kind == token_kind::integer ? value(t.int_value) : value(t.float_value);
                return c;
            }
            case token_kind::op:
                if (t.text == "(") {
                    next();
                    expr_ptr e = parse_tuple(true, true);
                    expect_op(")");
                    return e;
                }
                if (t.text == "[") {
                    next();
                    auto l = make<list_expr>(t);
                    while (!is_op("]")) {
                        if (!l->items.empty()) expect_op(",");
                        if (is_op("]")) break;
                        l->items.push_back(parse_expression());
                    }
                    next();
                    return l;
                }
                if (t.text == "{") {
                    next();
                    auto d = make<dict_expr>(t);
                    while (!is_op("}")) {
                        if (!d->items.empty()) expect_op(",");
                        if (is_op("}")) break;
                        expr_ptr k = parse_expression();
                        expect_op(":");
                        d->items.emplace_back(std::move(k), parse_expression());
                    }
                    next();
                    return d;
                }
                break;
            default: break;
        }
        fail(t, "unexpected " + describe(t));
    }

    expr_ptr parse_postfix(expr_ptr e) {
        while (true) {
            if (is_op(".")) {
                const token& at = next();
                if (cur().kind == token_kind::name) {
                    auto g = make<getattr_expr>(at);
                    g->obj = std::move(e);
                    g->name = next().text;
                    e = std::move(g);
                } else if (cur().kind == token_kind::integer) {
                    auto g = make<getitem_expr>(at);
                    g->obj = std::move(e);
                    auto c = make<const_expr>(cur());
                    c->v = value(next().int_value);
                    g->index = std::move(c);
                    e = std::move(g);
                } else {
                    fail_unexpected("an attribute name");
                }
            } else if (is_op("[")) {
                e = parse_subscript(std::move(e));
            } else if (is_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    expr_ptr parse_subscript(expr_ptr obj) {
        const token& at = next();  // [
        expr_ptr parts[3];
        int n_colons = 0;
        bool slice = false;
        if (!is_op(":")) parts[0] = parse_expression();
        while (is_op(":") && n_colons < 2) {
            next();
            slice = true;
            ++n_colons;
            if (!is_op(":") && !is_op("]")) parts[n_colons] = parse_expression();
        }
        expect_op("]");
        if (!slice) {
            if (!parts[0]) fail(at, "expected an index expression");
            auto g = make<getitem_expr>(at);
            g->obj = std::move(obj);
            g->index = std::move(parts[0]);
            return g;
        }
        auto s = make<slice_expr>(at);
        s->obj = std::move(obj);
        s->start = std::move(parts[0]);
        s->stop = std::move(parts[1]);
        s->step = std::move(parts[2]);
        return s;
    }

    std::vector<call_arg> parse_call_args() {
        expect_op("(");
        std::vector<call_arg> args;
        while (!is_op(")")) {
            if (!args.empty()) expect_op(",");
            if (is_op(")")) break;
            call_arg a;
            if (skip_op("**")) {
                a.star = 2;
            } else if (skip_op("*")) {
                a.star = 1;
            } else if (cur().kind == token_kind::name && peek().kind == token_kind::op && peek().text == "=") {
                a.name = next().text;
                next();
            }
            a.e = parse_expression();
            args.push_back(std::move(a));
        }
        next();
        return args;
    }

    expr_ptr parse_call(expr_ptr callee) {
        auto c = make<call_expr>(cur());
        c->callee = std::move(callee);
        c->args = parse_call_args();
        return c;
    }

    std::unique_ptr<filter_expr> parse_filter_item(expr_ptr input, bool inline_start = false) {
        if (!inline_start) expect_op("|");
        const token& at = cur();
        auto f = make<filter_expr>(at);
        f->input = std::move(input);
        f->name = expect_name();
        while (is_op(".") && peek().kind == token_kind::name) {
            next();
            f->name += "." + next().text;
        }
        if (!has_filter(f->name)) fail(at, "No filter named '" + f->name + "'.");
        if (is_op("(")) f->args = parse_call_args();
        return f;
    }

    expr_ptr parse_filter_expr(expr_ptr e) {
        while (true) {
            if (is_op("|")) {
                e = parse_filter_item(std::move(e));
            } else if (is_name("is")) {
                e = parse_test(std::move(e));
            } else if (is_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    expr_ptr parse_test(expr_ptr input) {
        const token& at = next();  // is
        auto t = make<test_expr>(at);
        t->input = std::move(input);
        t->negated = skip_name("not");
        const token& name_tok = cur();
        t->name = expect_name();
        while (is_op(".") && peek().kind == token_kind::name) {
            next();
            t->name += "." + next().text;
        }
        if (!has_test(t->name)) fail(name_tok, "No test named '" + t->name + "'.");
        if (is_op("(")) {
            t->args = parse_call_args();
        } else {
            bool arg_start = cur().kind == token_kind::name || cur().kind == token_kind::string ||
                             cur().kind == token_kind::integer || cur().kind == token_kind::floating ||
                             is_op("(") || is_op("[") || is_op("{");
            if (arg_start && !is_name("else") && !is_name("or") && !is_name("and")) {
                if (is_name("is")) fail(cur(), "You cannot chain multiple tests with is");
                call_arg a;
                a.e = parse_postfix(parse_primary());
                t->args.push_back(std::move(a));
            }
        }
        return t;
    }
};

}  // namespace

template_program::template_program(const std::string& source, const lexer_options& lex)
    : body_(std::make_unique<node_list>(parser(tokenize(source, lex)).parse_template())) {}

template_program::~template_program() = default;
template_program::template_program(template_program&&) noexcept = default;
template_program& template_program::operator=(template_program&&) noexcept = default;

}  // namespace edgellm::jinja
