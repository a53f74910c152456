"""What you run: each file here is one program (`python -m scripts.<name>`); none imports another."""
