"""The applications built on the library: the ``rna-core`` command (``cli``), backend parity (``parity``), the
papers' studies and reports (``studies``, ``ctrw_report``, ``apart_report``), the sanity checks (``sanity``),
markdown / JSON reports, model cards and plots (``reports``, ``model_card``, ``plots``). Nothing in the library
imports them."""
