"""The CI gate: YAML rules (rules), scored runs and baseline files (baseline), the verdict (evaluate) and its
terminal / Markdown / JUnit renderings (outputs)."""
