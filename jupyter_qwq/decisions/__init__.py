"""Which answer, and when to stop: a branch's score, the vote that weighs it, the stop rules.

    scores.py   DeepConf's confidence measures of a branch (lowest group, tail, bottom 10%, mean)
    prm.py      a process reward model served by vLLM (POST /pooling, token_classify)
    critic.py   the chat engine asked, ProcessBench-style, for a branch's first wrong step
    votes.py    majority | weighted | best over groups formed by math equivalence; keep-top
    stops.py    lossless | agree:K | confidence (DeepConf online) | none
    policy.py   those settings as one plain value, from a Solve or for a replay

Everything but prm.py and critic.py is pure: the solver and benchmarks/replay.py call the same
functions, so a replayed policy decides exactly as a live one would.
"""
