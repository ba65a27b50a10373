"""The closure-notice domain: closures and their words, notices and their versions, delivery
states and the retry policy, quiet hours, contacts, SMS segments, consent keywords, channels as
data. Pure Python: nothing here does I/O or knows SQL, Twilio, SMTP, HTTP or the scheduler."""
