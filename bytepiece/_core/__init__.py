"""The compiled core of bytepiece (private: only the package's own modules import it).

Built from ``cython_src/bytepiece/_core/``, one module per concept:

- ``trie``: the reversed double-array trie of a vocabulary;
- ``segment``: the segmentation kernels (Viterbi, windowed Viterbi, the samplers);
- ``workspace``: the kernels' per-call scratch space;
- ``forward_backward``: log Z, expected piece counts, boundary marginals;
- ``lattice``: ``Lattice`` (a compiled vocabulary; one text at a time) and ``DrawStream``;
- ``batch``: many texts on several threads, as id lists or flat arrays;
- ``queries``: n-best, path scores, entropy, forward sums, boundary marginals;
- ``text``: UTF-8 and NFC without the GIL; ``id_lists``: fast Python lists of ids;
- ``em``: the trainer's passes over its sample (E-steps, pairs, split scores);
- ``ngram_table``, ``piece_table``, ``pair_counts``: the trainer's counting tables;
- ``ngram_candidates``: the candidate pieces read out of a counted n-gram table;
- ``ngram_model``: the n-gram model and 0.6.3's tagging;
- ``chunk_keys``: the EM sample's per-chunk keys and scripts;
- ``testing``: hooks for the test suite.
"""

import importlib.util as _util
import os as _os

if _util.find_spec(__name__ + ".lattice") is None:
    _where = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    raise ImportError(
        f"bytepiece's compiled core is not built in {_where}. Python imported the source folder "
        "(it does when it runs inside a clone of the repository) and no extension was compiled "
        "there. In the clone, run `pip install -e .` (or `python setup.py build_ext --inplace`); "
        "or run Python outside the clone to use an installed bytepiece."
    )
