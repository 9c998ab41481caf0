// Model loading: architecture lookup, hyperparameters, and validated weight views.
#include "model/model.h"

#include <fmt/format.h>

#include <algorithm>

#include "kernels/kernels.h"
#include "quant/quant.h"

namespace edgellm::model {

const std::vector<const arch_def*>& supported_archs() {
    static const std::vector<const arch_def*> archs{&llama_arch(),  &qwen2_arch(),  &qwen3_arch(),
                                                        &phi3_arch(),   &gemma_arch(),  &gemma2_arch(),
                                                        &gemma3_arch(), &deepseek2_arch(), &bert_arch()};
    return archs;
}

const arch_def& find_arch(std::string_view name) {
    std::string names;
    for (const arch_def* a : supported_archs()) {
        if (a->name == name) return *a;
        names += fmt::format("{}{} ({})", names.empty() ? "" : ", ", a->name, a->families);
    }
    throw error(fmt::format("unsupported model architecture '{}'; supported: {}", name, names));
}

std::unique_ptr<model> model::load(const std::string& path) { return from_file(gguf::file::open(path)); }

model_hparams read_model_hparams(const gguf::file& f) {
    const std::string arch = f.get_string_opt("general.architecture").value_or("");
    if (arch.empty()) throw error("model metadata is missing 'general.architecture'");
    const arch_def& a = find_arch(arch);
    model_hparams hp = read_hparams(f, arch);
    hp.rope = a.rope;
    if (a.adjust_hparams) a.adjust_hparams(f, hp);
    if (hp.head_dim_v != hp.head_dim)
        throw error(fmt::format("model metadata: value_length {} differs from key_length {} (not supported for {})",
                                hp.head_dim_v, hp.head_dim, arch));
    if (hp.rope_yarn && !hp.mla.enabled())
        throw error(fmt::format("rope scaling type 'yarn' is not supported for {} yet (only for deepseek2)", arch));
    return hp;
}

std::unique_ptr<model> model::from_file(gguf::file f) {
    std::unique_ptr<model> m(new model());
    m->file_ = std::move(f);
    const gguf::file& gf = m->file_;
    m->hp_ = read_model_hparams(gf);
    m->arch_ = &find_arch(m->hp_.arch);
    const model_hparams& hp = m->hp_;

    m->owned_.reserve(static_cast<size_t>(hp.n_layer) * (10 + static_cast<size_t>(hp.n_head)) + 4);
    weight_loader ld(gf, m->owned_, m->w_.n_matrix_bytes);
    model_weights& w = m->w_;
    if (m->arch_->load_globals) {
        m->arch_->load_globals(ld, hp, w);
    } else {
        w.token_embd = ld.require_matrix("token_embd.weight", hp.n_embd, hp.n_vocab);
        w.output_norm = ld.require_vector("output_norm.weight", hp.n_embd);
        if (auto out = ld.optional_matrix("output.weight", hp.n_embd, hp.n_vocab))
            w.output = *out;
        else
            w.output = w.token_embd;
    }
    w.rope_freqs = ld.optional_vector("rope_freqs.weight", hp.n_rot / 2);
    w.layers.resize(static_cast<size_t>(hp.n_layer));
    for (int il = 0; il < hp.n_layer; ++il) m->arch_->load_layer(ld, hp, il, w.layers[il]);
    return m;
}

uint64_t model::repack(int n_threads) {
    if (packed_bytes_) return packed_bytes_;
    std::vector<matrix*> todo;
    for (auto& l : w_.layers) {
        for (matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.mla.wq_a, &l.mla.wq_b,
                          &l.mla.wkv_a, &l.moe.gate_shexp, &l.moe.up_shexp, &l.moe.down_shexp})
            todo.push_back(m);
        // Each expert is its own matrix (a slice of the 3-D tensor). The per-head MLA matrices
        // stay as they are: small, and some are f32 copies made at load time, not file pages.
        for (auto* experts : {&l.moe.gate, &l.moe.up, &l.moe.down})
            for (matrix& m : *experts) todo.push_back(&m);
    }
    // A tied output (Gemma, SmolLM2: no output.weight) is packed too: it is the largest matrix of a
    // small model and read whole every decode step. token_embd keeps pointing at the file rows;
    // their pages are dropped with the output's, and the embedding lookup faults back only the
    // rows it reads (one per token), so the process still holds one copy of the matrix.
    todo.push_back(&w_.output);
    // One buffer for all of them, each matrix at a 64-byte boundary.
    constexpr size_t k_align = 64;
    std::vector<size_t> sizes;
    size_t total = 0;
    for (const matrix* m : todo) {
        sizes.push_back(*m ? kernels::packed_size(m->type, m->n_rows, m->n_cols) : 0);
        total += (sizes.back() + k_align - 1) / k_align * k_align;
    }
    if (total == 0) return 0;
    packed_ = anon_buffer(total);
    size_t offset = 0;
    for (size_t i = 0; i < todo.size(); ++i) {
        matrix& m = *todo[i];
        if (sizes[i] == 0) continue;
        uint8_t* dst = packed_.data() + offset;
        // In slices of whole 8-row groups (the packed bytes of rows [r0, r1) are those of the
        // groups r0 / 8 .. r1 / 8, the last slice adding the tail rows): the original rows are
        // not read again, so each slice's file pages are let go as soon as it is packed, and the
        // process holds one copy of the weights, not two, even while packing a large output
        // matrix (Gemma 3's 262,144-row one is 170 MiB).
        const size_t rb = row_size(m.type, m.n_cols);
        const int64_t slice = std::max<int64_t>(8, int64_t((size_t(16) << 20) / rb) / 8 * 8);
        const auto* src = static_cast<const uint8_t*>(m.data);
        for (int64_t r0 = 0; r0 < m.n_rows; r0 += slice) {
            const int64_t n = m.n_rows - r0 - slice < 8 ? m.n_rows - r0 : slice;  // no slice of under 8 rows
            const size_t at = r0 == 0 ? 0 : kernels::packed_size(m.type, r0, m.n_cols);
            kernels::pack_weights(m.type, src + rb * size_t(r0), n, m.n_cols, dst + at, n_threads);
            file_.drop_pages(src + rb * size_t(r0), rb * size_t(n));
            if (n != slice) break;
        }
        m.data = dst;
        m.packed = true;
        offset += (sizes[i] + k_align - 1) / k_align * k_align;
    }
    packed_bytes_ = offset;
    return packed_bytes_;
}

}  // namespace edgellm::model
