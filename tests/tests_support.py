SMALL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
