"""Train, evaluate, predict and export a multi-task BERT (the `bert-mtl`
command, in google-research/bert's style: `python run_multitask.py
--problems=... --do_train --output_dir=...`; with no flags, the main job).
See bert_mtl/cli.py and `python run_multitask.py --helpfull`."""

from bert_mtl import cli

if __name__ == "__main__":
  cli.run()
