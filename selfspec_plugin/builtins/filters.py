from .. import filters as f
from ..hookspecs import hookimpl


@hookimpl
def register_filters(register):
    register(f.FilterSpec("start", "instruction", lambda s: f.start_check, order=10))
    register(
        f.FilterSpec("length", "instruction", lambda s: f.word_count_check(s["min_words"], s["max_words"]), order=20)
    )
    register(f.FilterSpec("blacklist", "instruction", lambda s: f.blacklist_check(tuple(s["blacklist"])), order=30))
    register(
        f.FilterSpec(
            "off_domain",
            "instruction",
            lambda s: f.off_domain_check(s["min_domain_overlap"], s.get("reference", [])),
            order=40,
        )
    )
    register(
        f.FilterSpec(
            "novelty", "instruction", lambda s: f.novelty_check(s["rouge_threshold"], s["existing"]), order=100
        )
    )
    register(f.FilterSpec("response", "response", lambda s: f.response_check, order=10))
    register(f.FilterSpec("copied", "response", lambda s: f.copy_check(s["copy_threshold"]), order=20))
    register(f.FilterSpec("verbatim", "response", lambda s: f.verbatim_check(), order=25))
    register(f.FilterSpec("unasked_label", "response", lambda s: f.unasked_label_check, order=30))
    register(f.FilterSpec("label_share", "response", lambda s: f.label_share_check(s["max_label_share"]), order=90))
