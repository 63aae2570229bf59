-- Bank statements (and payouts) whose opening balance plus their lines is not the closing balance: a statement
-- received incomplete or a line lost. No rows = every statement balances.
-- severity: warn
SELECT statement_id, format, account, statement_date, opening_balance, entries_total, closing_balance, source_file
FROM core.bank_statements
WHERE NOT balanced
ORDER BY statement_date, statement_id
