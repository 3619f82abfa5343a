"""`python -m bert_mtl`: the bert-mtl command (bert_mtl/cli.py)."""

from bert_mtl import cli

if __name__ == "__main__":
  cli.run()
