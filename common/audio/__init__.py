"""Audio: the WAV header reader, the ffmpeg wrapper, the MP3 header reader, and the conversion."""
