from nst_batch.cli import entry

entry()
