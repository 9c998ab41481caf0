// edgellm quantize: per-tensor types from quant/mix.h, rows converted in parallel (OpenMP) with
// the quantizers of quant/quant.h, streamed tensor by tensor into a gguf::writer.
#include "quality/quantize.h"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>

#include "core/error.h"
#include "core/timing.h"
#include "gguf/gguf.h"
#include "quant/mix.h"
#include "quant/quant.h"

namespace edgellm::quality {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_float_type(ggml_type t) { return t == ggml_type::f32 || t == ggml_type::f16 || t == ggml_type::bf16; }

std::optional<uint64_t> arch_u64(const gguf::file& f, const std::string& arch, const char* key) {
    const gguf::value* v = f.find(arch + "." + key);
    if (!v || !v->is_integer()) return std::nullopt;  // absent, or a per-layer array
    return v->as_u64();
}

struct plan_context {
    const type_mix* mix = nullptr;
    mix_model mm;
    bool tied = true;
};

plan_context make_context(const gguf::file& f, const quantize_options& opts) {
    plan_context c;
    c.mix = &find_type_mix(opts.type);
    const std::string arch = f.get_string_opt("general.architecture").value_or("");
    if (arch.empty()) throw usage_error(f.path() + " has no general.architecture: not a model file");
    if (arch_u64(f, arch, "expert_count").value_or(0) > 1)
        throw usage_error(fmt::format("{} is a mixture-of-experts model ({}); edgellm quantize handles dense models only",
                                      f.path(), arch));
    c.mm.n_layer = static_cast<int>(arch_u64(f, arch, "block_count").value_or(0));
    const uint64_t n_head = arch_u64(f, arch, "attention.head_count").value_or(1);
    const uint64_t n_head_kv = arch_u64(f, arch, "attention.head_count_kv").value_or(n_head);
    c.mm.n_gqa = n_head_kv > 0 ? static_cast<int64_t>(n_head / n_head_kv) : 1;
    // llama.cpp's LLM_TYPE_70B: a llama with 80 layers and grouped-query attention.
    c.mm.is_70b = arch == "llama" && c.mm.n_layer == 80 && n_head != n_head_kv;
    c.tied = f.find_tensor("output.weight") == nullptr;
    return c;
}

std::vector<quantized_tensor> make_plan(const gguf::file& f, const plan_context& c, const quantize_options& opts) {
    std::vector<quantized_tensor> plan;
    int i_attn_v = 0, i_ffn_down = 0;
    for (const auto& t : f.tensors()) {
        quantized_tensor q;
        q.name = t.name;
        q.from = t.type;
        q.ne0 = t.ne[0];
        q.n_rows = t.n_rows();
        q.bytes_in = t.size_bytes;
        q.to = t.type;
        if (quantizable_tensor(t.name, t.n_dims)) {
            // llama.cpp counts these tensors in file order; for a dense model that is the layer.
            int il = 0;
            if (ends_with(t.name, "attn_v.weight") || ends_with(t.name, "attn_qkv.weight") ||
                ends_with(t.name, "attn_kv_b.weight"))
                il = i_attn_v++;
            else if (ends_with(t.name, "ffn_down.weight"))
                il = i_ffn_down++;
            const std::string rule_name = c.tied && t.name == "token_embd.weight" ? "output.weight" : t.name;
            q.to = tensor_type(*c.mix, rule_name, il, c.mm, t.ne[0], opts.pure);
        }
        if (q.to != q.from) {
            if (!is_float_type(q.from) && !opts.allow_requantize)
                throw usage_error(fmt::format(
                    "{} is already {} in {}: quantizing quantized weights again loses accuracy twice; start from the "
                    "F32/F16/BF16 file, or pass --allow-requantize",
                    t.name, type_name(q.from), f.path()));
            if (!can_dequantize(q.from))
                throw usage_error(fmt::format("{} has type {}, which edgellm cannot read", t.name, type_name(q.from)));
            if (!can_quantize(q.to))
                throw usage_error(fmt::format("edgellm cannot write type {} (for {})", type_name(q.to), t.name));
        }
        q.bytes_out = row_size(q.to, q.ne0) * static_cast<uint64_t>(q.n_rows);
        plan.push_back(std::move(q));
    }
    return plan;
}

}  // namespace

std::vector<quantized_tensor> plan_quantization(const std::string& input, const quantize_options& opts) {
    const auto f = gguf::file::open(input);
    return make_plan(f, make_context(f, opts), opts);
}

quantize_result quantize_model(const std::string& input, const std::string& output, const quantize_options& opts) {
    if (output.empty()) throw usage_error("no output path given");
    std::error_code ec;
    if (std::filesystem::exists(output, ec) && std::filesystem::equivalent(input, output, ec))
        throw usage_error("the output would overwrite the input file " + input);
    stopwatch sw;
    const auto f = gguf::file::open(input);
    const plan_context c = make_context(f, opts);
    quantize_result res;
    res.input = input;
    res.output = output;
    res.type = c.mix->name;
    res.file_type = c.mix->file_type;
    res.tensors = make_plan(f, c, opts);
    res.n_threads = opts.n_threads > 0 ? opts.n_threads : omp_get_num_procs();

    gguf::writer w;
    for (const auto& [key, val] : f.metadata()) {
        if (key == "general.file_type" || key == "general.quantization_version") continue;
        w.set(key, val);
    }
    w.set("general.file_type", gguf::value::make_u32(c.mix->file_type));
    w.set("general.quantization_version", gguf::value::make_u32(2));

    uint64_t total_in = 0;
    for (const auto& q : res.tensors) total_in += q.bytes_in;
    size_t n_done = 0;
    uint64_t in_done = 0;
    const auto& infos = f.tensors();
    for (size_t i = 0; i < infos.size(); ++i) {
        const gguf::tensor_info& t = infos[i];
        const quantized_tensor& q = res.tensors[i];
        std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
        w.add_tensor_lazy(t.name, q.to, ne, [&, i](uint8_t* dst, size_t size_bytes) {
            const gguf::tensor_info& ti = infos[i];
            const quantized_tensor& qt = res.tensors[i];
            if (opts.progress) opts.progress(n_done, infos.size(), qt.name, in_done, total_in);
            if (size_bytes != qt.bytes_out) throw error("quantize: size mismatch for " + qt.name);
            if (qt.to == qt.from) {
                std::copy_n(ti.data, size_bytes, dst);
            } else {
                const size_t in_row = row_size(qt.from, qt.ne0), out_row = row_size(qt.to, qt.ne0);
                std::exception_ptr failure;
                std::mutex failure_mutex;
#pragma omp parallel num_threads(res.n_threads)
                {
                    std::vector<float> buf(static_cast<size_t>(qt.ne0));
#pragma omp for schedule(dynamic, 4)
                    for (int64_t r = 0; r < qt.n_rows; ++r) {
                        try {
                            const uint8_t* src = ti.data + static_cast<size_t>(r) * in_row;
                            const float* x = reinterpret_cast<const float*>(src);
                            if (qt.from != ggml_type::f32) {
                                dequantize_row(qt.from, src, buf.data(), qt.ne0);
                                x = buf.data();
                            } else if (reinterpret_cast<uintptr_t>(src) % alignof(float) != 0) {
                                std::copy_n(src, in_row, reinterpret_cast<uint8_t*>(buf.data()));
                                x = buf.data();
                            }
                            quantize_row(qt.to, x, dst + static_cast<size_t>(r) * out_row, qt.ne0);
                        } catch (const std::exception& e) {
                            std::lock_guard<std::mutex> lock(failure_mutex);
                            if (!failure)
                                failure = std::make_exception_ptr(
                                    error(fmt::format("{} row {}: {}", qt.name, r, e.what())));
                        }
                    }
                }
                if (failure) std::rethrow_exception(failure);
            }
            f.drop_pages(ti.data, ti.size_bytes);  // the input is read once: keep the page cache out of RSS
            ++n_done;
            in_done += qt.bytes_in;
            if (opts.progress && n_done == infos.size()) opts.progress(n_done, infos.size(), qt.name, in_done, total_in);
        });
    }
    w.write(output);
    res.seconds = sw.elapsed_ms() / 1000.0;
    res.bytes_in = f.file_size();
    res.bytes_out = std::filesystem::file_size(output);
    for (const auto& q : res.tensors) {
        res.n_params += static_cast<uint64_t>(q.ne0 * q.n_rows);
        res.tensor_types[std::string(type_name(q.to))]++;
    }
    return res;
}

}  // namespace edgellm::quality
