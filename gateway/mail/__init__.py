"""Raw MIME: parse once, edit (clean infected parts), render the copy that is delivered."""
