"""The OpenAI-compatible gateway (vLLM-style split: protocol / engine / service / router)."""
