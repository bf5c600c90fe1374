import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer


def test_tiny_llama_loads_and_runs(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ids = tok("Q: What is the answer? A:", return_tensors="pt").input_ids
    assert ids[0, 0].item() == tok.bos_token_id
    assert tok.decode(ids[0], skip_special_tokens=True) == "Q: What is the answer? A:"
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tok))
    assert (tiny_llama_dir / "model.safetensors").exists()


def test_tiny_t5_loads_and_runs(tiny_t5_dir):
    tok = AutoTokenizer.from_pretrained(tiny_t5_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir)
    enc = tok("Translate the following sentence", return_tensors="pt")
    assert enc.input_ids[0, -1].item() == tok.eos_token_id
    out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert out.shape[1] <= 4
