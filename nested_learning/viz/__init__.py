"""The dashboard's logic and figures, as pure functions tested without Streamlit (pages only compose them).

Figures: ``timelines`` (the run on one token axis), ``heatmaps`` (M_t, CMS weights, A/B panels), ``text_map``
(the text coloured by surprise, clickable), ``anatomy`` (the delta rule at a token), ``probe`` (what the
memory still holds), ``compare`` (A/B runs and B's choices), ``repeats`` (repeated spans), ``verdict`` (a run
against its controls), ``generation`` (a prompt continued from a memory), ``validation_view``.
Sessions and serving: ``session`` (one browser session's memory, runs in pieces), ``guard`` (the
finiteness guard), ``admission`` (the server-wide run pool), ``view`` (the shareable URL), ``explore_state``
(Explore's state between reruns, with pure transitions), ``run_memo`` (what a run's figures derive, built once),
``models`` (which model, uploads, downloads), ``presets``, ``lessons`` (the Learn page), ``snippet``, ``safe_text``, ``cli``.
"""
