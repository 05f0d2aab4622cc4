"""LoRA fine-tuning of the served model on ViGGO (sentence -> meaning representation).

`python -m finetune --config finetune/configs/viggo-smollm2.yaml`; from Python,
`finetune.train.train(finetune.config.load_config(path, max_steps=3))` returns the adapter folder.
"""
