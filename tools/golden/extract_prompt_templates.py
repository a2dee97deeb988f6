"""Extract the ImageNet prompt templates from OpenAI's notebook into test/golden/imagenet_templates.json.

The notebook (notebooks/Prompt_Engineering_for_ImageNet.ipynb of an openai/CLIP checkout) is not in this repo; the
test compares src/zero_shot.ts with the two facts taken from it here:

  templates  the 80 strings of the `imagenet_templates = [...]` list, in order (read as a Python literal)
  selected   the 7 templates of the numbered list after "sequential forward selection", in order

  CLIP_REPO=/path/to/openai/CLIP python3 tools/golden/extract_prompt_templates.py

Standard library only; CLIP_REPO defaults to /work/ref. The output records the notebook's sha256.
"""

import ast
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CLIP_REPO = os.environ.get("CLIP_REPO", "/work/ref")
NOTEBOOK = os.path.join(CLIP_REPO, "notebooks", "Prompt_Engineering_for_ImageNet.ipynb")
OUT = os.path.join(HERE, "..", "..", "test", "golden", "imagenet_templates.json")


def main():
    if not os.path.isfile(NOTEBOOK):
        sys.exit(f"{NOTEBOOK} is missing: set CLIP_REPO to an openai/CLIP checkout")
    raw = open(NOTEBOOK, "rb").read()
    cells = ["".join(c["source"]) for c in json.loads(raw)["cells"]]

    templates = None
    for source in cells:
        if "imagenet_templates = [" not in source:
            continue
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "imagenet_templates" for t in node.targets):
                templates = ast.literal_eval(node.value)
    selection = next(s for s in cells if "sequential forward selection" in s)
    selected = [m.strip() for m in re.findall(r"^\d\. (.*)$", selection, re.M)]

    assert templates is not None and len(templates) == 80, "expected the 80-template list"
    assert len(selected) == 7 and all(t in templates for t in selected), "expected 7 templates chosen from the 80"
    golden = {
        "source": "openai/CLIP notebooks/Prompt_Engineering_for_ImageNet.ipynb",
        "notebook_sha256": hashlib.sha256(raw).hexdigest(),
        "templates": templates,
        "selected": selected,
    }
    with open(OUT, "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT)}: {len(templates)} templates, {len(selected)} selected")


if __name__ == "__main__":
    main()
