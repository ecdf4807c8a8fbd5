"""The biography kit that the biography worlds share: Part 3.1's bioS / bioR people, templates and texts
(`physlm/worlds/bio`) and Part 3.3's bioS(N) capacity data (`physlm/worlds/capacity`).

- `people`: the people (attributes drawn per person from the seed), the pools and templates (package data in
  `data/*.json`, written for physlm; the name pools are `physlm/names`);
- `biographies`: bioS entries from templates, bioR paraphrases, imported biographies, the people / bios / qa tables;
- `text`: the word-level vocabulary of a set of pools and the token spans of every attribute value.

They live here, outside any world, because a world imports no other world (tests/test_import_graph.py); the
biography world's stages (`physlm/worlds/bio`) build on them, and so does the capacity world's bioS data. No torch.
"""
