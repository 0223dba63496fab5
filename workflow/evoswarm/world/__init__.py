"""The data: the embedded world's generator and the readers (with their contracts) of task items and
persona chats."""
