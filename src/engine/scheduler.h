// Continuous batching: the one generation loop of the engine. Sequences join and leave the
// running batch at every step; each step is schedule -> execute (one batched forward pass over
// every running sequence) -> update (sample, stream, finish). A long prompt is prefilled in
// chunks within a per-step token budget so it does not stall the sequences already decoding,
// and KV blocks come from the paged cache: admission waits for free blocks, a sequence that
// cannot grow preempts the newest one (its KV is dropped and recomputed later, as vLLM does).
// Automatic prefix caching: at admission a sequence takes over every cached KV block of its
// prompt's leading full blocks (model::kv_cache::attach_prefix) and evaluates only the rest; each
// step registers the blocks it completed, so later requests (another API call resending the
// conversation, another --parallel slot, the next chat turn) reuse them.
// Single-sequence generate() and batched bench runs are this loop with one or N requests.
// The executor is an interface, so the scheduler is tested with a fake runner and no model.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "engine/stop_reason.h"
#include "sampling/sampler.h"

namespace edgellm::engine {

struct generation_params {
    int n_predict = 128;      // tokens to generate at most (> 0)
    sampling::sampling_params sampling;
    bool ignore_eos = false;  // keep going past end-of-generation tokens (benchmarks)
    std::vector<int32_t> extra_eog_ids;  // more end-of-generation tokens than the model's own
    // >= 0: record each generated token's log-probability under the raw logits and the top
    // `logprobs` alternatives (sampling::log_softmax_at) in sequence_result::logprobs and
    // request::on_logprob. -1: off. Not with an exclusive (speculative) runner.
    int logprobs = -1;
};

// What one sequence measured and how it ended.
struct sequence_result {
    std::vector<int32_t> tokens;  // generated ids (an end-of-generation token that ended it is not included)
    int64_t n_prompt = 0;         // prompt tokens
    int64_t n_cached = 0;         // prompt tokens whose KV was reused (prefix cache or pinned slot), not evaluated
    double queue_ms = 0;          // submit -> admitted into the running batch
    double prefill_ms = 0;        // time of the forward passes that evaluated its prompt
    double decode_ms = 0;         // time of the forward passes that evaluated its generated tokens
    int64_t n_decode = 0;         // those passes
    double sample_ms = 0;         // time in its sampler chain
    double first_token_ms = 0;    // submit -> first token picked
    double latency_ms = 0;        // submit -> last token picked
    int64_t n_kv = 0;             // positions of its KV cache at the end (prompt + decoded tokens)
    int n_preempted = 0;          // times its KV was dropped for lack of blocks and recomputed
    stop_reason stop = stop_reason::none;  // how it ended (stop_reason.h maps it to the APIs' names)
    std::string error;            // with stop_reason::error: what went wrong
    int64_t n_drafted = 0;        // speculative decoding: tokens drafted for it
    int64_t n_accepted = 0;       // ... and the target kept
    std::vector<sampling::token_logprob> logprobs;  // per generated token, with gp.logprobs >= 0
};

struct request {
    std::vector<int32_t> prompt;  // non-empty, shorter than the context
    generation_params gp;
    // Called on the scheduler's thread with each generated token; return false to cancel.
    std::function<bool(int32_t token)> on_token;
    // With gp.logprobs >= 0: called on the scheduler's thread with each generated token's
    // record, just before on_token.
    std::function<void(const sampling::token_logprob&)> on_logprob;
    // Called on the scheduler's thread once, when the sequence has finished or failed.
    std::function<void(const sequence_result&)> on_done;
    // Pin the sequence to KV slot `slot` whose first n_cached prompt tokens are already in the
    // cache (a chat turn continuing its history), and keep its KV when it ends. -1: any free
    // slot, KV freed at the end.
    int slot = -1;
    int64_t n_cached = 0;
    // Reuse cached KV blocks of the prompt's prefix (when the KV cache has prefix caching on).
    // Off for benchmark runs, whose prefill must be measured in full each time.
    bool reuse_prefix = true;
};

// Executes one batched forward pass. The scheduler reserves the KV blocks of every entry
// before calling eval().
class step_runner {
public:
    virtual ~step_runner() = default;
    virtual int64_t n_vocab() const = 0;
    virtual model::kv_cache& kv() = 0;
    // Logits [n_outputs][n_vocab] of the entries with want_logits, in batch order.
    virtual std::span<const float> eval(const model::batch& b) = 0;
};

// The model's forward pass as a step_runner.
class forward_runner : public step_runner {
public:
    forward_runner(model::forward_pass& f, model::kv_cache& kv, int64_t n_vocab) : f_(f), kv_(kv), n_vocab_(n_vocab) {}
    int64_t n_vocab() const override { return n_vocab_; }
    model::kv_cache& kv() override { return kv_; }
    std::span<const float> eval(const model::batch& b) override { return f_.eval(kv_, b); }

private:
    model::forward_pass& f_;
    model::kv_cache& kv_;
    int64_t n_vocab_;
};

// Speculative decoding inside the batched loop: a proposer drafts up to draft_max tokens for a
// decoding sequence, the step evaluates its pending token and the drafts in the same forward
// pass as every other sequence, and the update samples each row with the sequence's own sampler
// chain, keeping drafts while they equal what it picks (so the output is exactly plain
// decoding's, greedy or sampled, penalties and grammars included) and rolling the KV back past
// the first mismatch.
// Drafts for several decoding sequences at once (a draft model, batched over the sequences).
class draft_source {
public:
    virtual ~draft_source() = default;
    struct want {
        int slot;                         // the sequence's KV slot (the source may keep state per slot)
        std::span<const int32_t> tokens;  // its whole history: prompt and generated tokens
        int max;                          // drafts wanted at most
    };
    // Up to want.max tokens continuing each want's tokens, in the order of `wants`.
    virtual std::vector<std::vector<int32_t>> propose(std::span<const want> wants) = 0;
    // The sequence in `slot` ended or lost its KV: forget what is kept for it.
    virtual void release(int slot) = 0;
};

struct speculation_params {
    int ngram = 0;       // > 0: prompt-lookup drafts (ngram_draft) matching up to this many tokens
    int draft_max = 8;   // tokens drafted per step at most
    int draft_min = 1;   // fewer drafts than this are not worth a wider pass: decode plainly
    std::shared_ptr<draft_source> drafter;  // a draft model (instead of n-gram drafts)
    bool enabled() const { return ngram > 0 || drafter; }
};

// Prompt lookup (llama.cpp's lookup decoding, vLLM's n-gram speculator): for m = n .. 1, the
// latest earlier occurrence of the last m tokens of `tokens` whose continuation is known; the
// first found gives up to `max` tokens of that continuation. Empty when nothing matches.
std::vector<int32_t> ngram_draft(std::span<const int32_t> tokens, int n, int max);

// One sequence's share of a step, as plan() decides it (plain data: tests read it).
struct planned_sequence {
    uint64_t id = 0;               // the request id submit() returned
    int slot = -1;                 // its KV slot
    int64_t pos = 0;               // position of tokens[0]
    std::vector<int32_t> tokens;   // evaluated this step: a prompt chunk, or the pending token then the drafts
    int n_draft = 0;               // drafts at the end of tokens
    bool prefill = false;          // a chunk of its prompt (or of its recomputation after preemption)
    bool samples = false;          // logits come back for its last n_draft + 1 entries and pick tokens
};
struct step_plan {
    bool idle = false;  // nothing runs or waits
    std::vector<planned_sequence> seqs;
    int64_t n_tokens() const;
};

struct scheduler_params {
    int64_t n_batch = 512;   // tokens per forward pass (decode tokens + prefill chunks)
    int max_running = 0;     // sequences decoding together; 0: the KV cache's sequence slots
    size_t max_queue = 64;   // requests waiting for admission; more are refused (queue_full)
    std::vector<int32_t> eog_ids;  // the model's end-of-generation tokens
    // The model's vocabulary for constrained decoding, asked for only by requests with a grammar.
    std::function<std::shared_ptr<const sampling::token_vocab>()> vocab;
    speculation_params spec;  // drafts inside the batched loop (n-gram or a draft model)
};

// The one owner of the prompt rules (scheduler::submit, engine::check_prompt): usage_error for an
// empty prompt, one that leaves no room in a context of n_ctx positions, or ids outside n_vocab.
void check_prompt(std::span<const int32_t> prompt, int64_t n_ctx, int64_t n_vocab);

// The scheduler refused a request because its queue is full (HTTP 503).
class queue_full : public error {
public:
    using error::error;
};

// Counters for /metrics and tests; read from any thread.
struct scheduler_metrics {
    std::atomic<uint64_t> requests_submitted{0};
    std::atomic<uint64_t> requests_finished{0};
    std::atomic<uint64_t> requests_cancelled{0};
    std::atomic<uint64_t> requests_rejected{0};
    std::atomic<uint64_t> prompt_tokens{0};     // prompt tokens evaluated
    std::atomic<uint64_t> generated_tokens{0};  // tokens streamed out
    std::atomic<uint64_t> steps{0};             // forward passes
    std::atomic<uint64_t> preemptions{0};
    std::atomic<int64_t> waiting{0};            // submitted, not admitted yet
    std::atomic<int64_t> running{0};            // in the running batch
    std::atomic<int64_t> last_batch_tokens{0};  // entries of the last forward pass
    std::atomic<int64_t> last_batch_seqs{0};    // sequences in the last forward pass
    std::atomic<int64_t> kv_blocks_used{0};
    std::atomic<int64_t> kv_blocks_total{0};
    std::atomic<uint64_t> kv_bytes{0};              // the KV cache's allocation (window-sized pools included)
    std::atomic<int64_t> kv_blocks_cached{0};       // blocks holding a registered prefix
    std::atomic<uint64_t> prefix_hit_tokens{0};     // prompt tokens taken from the prefix cache
    std::atomic<uint64_t> prefix_hit_blocks{0};     // ... in blocks
    std::atomic<uint64_t> draft_tokens{0};     // speculative decoding: drafted tokens
    std::atomic<uint64_t> draft_accepted{0};   // ... that the target kept
};

class scheduler {
public:
    scheduler(step_runner& runner, scheduler_params p);
    ~scheduler();

    // Thread-safe. Validates the request (usage_error: empty prompt, too long for the context
    // or the KV pool, bad token ids, n_predict <= 0) and queues it; queue_full when the queue
    // holds max_queue requests. Returns the request id.
    uint64_t submit(request r);
    // Thread-safe. The sequence ends with stop_reason::cancelled at the next step (its blocks are freed).
    void cancel(uint64_t id);

    // Runs one plan -> execute -> update step on the calling thread. Returns false when there
    // was nothing to do (no running or waiting sequence).
    bool step();
    // The three parts of step(), for tests. plan(): takes in new requests and cancellations,
    // admits, reserves the KV blocks of every planned entry (preempting when the pool is short)
    // and drafts. execute(): one forward pass, the logits of the entries that sample. update():
    // samples, accepts drafts, rolls the KV back past rejected ones, streams and finishes.
    step_plan plan();
    std::span<const float> execute(const step_plan& p);
    void update(const step_plan& p, std::span<const float> logits, double step_ms);
    // Steps until every submitted request has finished.
    void run_until_idle();
    // Steps on the calling thread until stop() (waiting without spinning while idle).
    void serve();
    void stop();

    const scheduler_metrics& metrics() const { return metrics_; }
    int64_t n_ctx() const { return runner_.kv().n_ctx(); }

private:
    struct sequence;
    void admit();
    void finish(sequence& s, stop_reason reason, const std::string& err = {});
    // One picked token (from logits row `row`): false when the sequence ended.
    bool emit(sequence& s, int32_t tok, std::span<const float> row);
    // The one owner of the stop rules after a token was emitted (the caller's callback said
    // `keep_going`): cancelled, a completed grammar (eos), n_predict reached (length), the
    // context full (context); none while the sequence goes on.
    stop_reason check_stop(const sequence& s, bool keep_going) const;
    sequence* find_running(uint64_t id);
    bool reserve_or_preempt(sequence& s, int64_t n_pos);
    void preempt(sequence& victim);
    void update_kv_metrics();

    step_runner& runner_;
    scheduler_params p_;
    scheduler_metrics metrics_;

    std::mutex mu_;  // guards incoming_, cancelled_, stop_
    std::condition_variable cv_;
    std::deque<std::unique_ptr<sequence>> incoming_;
    std::unordered_set<uint64_t> cancelled_;
    bool stop_ = false;
    uint64_t next_id_ = 1;

    // Scheduler thread only.
    std::deque<std::unique_ptr<sequence>> waiting_;
    std::vector<std::unique_ptr<sequence>> running_;  // in admission order
    std::vector<int> free_slots_;
    model::batch batch_;
};

}  // namespace edgellm::engine
